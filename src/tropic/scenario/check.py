"""``tropic check``: the health of an embedded store, either recovered by this process or read live.

* **The store is free**: this process becomes its owner, recovers it (finishing whatever was queued or
  executing, as a restart of its owner would), then checks it: nothing in flight, no duplicate request or
  step, the model equal to the devices, no violated constraint.
* **Another process owns it** (a server, a workload): the check runs nothing. It reads one consistent
  snapshot of the store and of the sim devices, without writing either, and reports on it: in-flight
  transactions are counted as such, and the resources they lock are left out of the comparison of the
  model with the devices, since they are changing. The report says it is read-only and who holds the store.
"""

from __future__ import annotations

from typing import Any

from tropic.drivers.sim import SimDriver, read_devices
from tropic.errors import ConfigError, StoreInUse
from tropic.model import STANDARD, audit, differences, orphans, project, without
from tropic.owner import Holder
from tropic.records.record import Transaction
from tropic.records.states import FINAL, State
from tropic.scenario.workload import datacenter, request_index
from tropic.service.embedded import open_embedded
from tropic.store.registry import StoreURI, parse_store_uri
from tropic.store.sqlite import read_snapshot

QUEUED = frozenset({State.SUBMITTED, State.DEFERRED})  # not simulated into the model, no device touched


def check_store(store: str) -> dict[str, Any]:
    """Recover and check the store if it is free; check a live one read-only (see the module docstring).
    ``healthy`` in the report is what the exit code of ``tropic check`` says."""
    spec = parse_store_uri(store)
    path = spec.path
    if path is not None and not path.exists():
        raise ConfigError(f"no tropic store at {path}", path=str(path))
    try:
        emb = open_embedded(store, initial=datacenter, holder=Holder.current(command="tropic check"))
    except StoreInUse as refused:
        if path is None:
            raise
        return check_live(spec, refused.holder)
    c = emb.controller
    c.start()
    try:
        c.drain(600)
        report = c.check()
        txns = c.transactions()
        duplicate_steps = emb.driver.duplicates() if isinstance(emb.driver, SimDriver) else []
        out = _report(txns, duplicate_steps)
        out.update(
            {
                "read_only": False,
                "consistent": bool(report["consistent"]) and not report["orphans"],
                "violations": len(report["violations"]),
                "orphans": report["orphans"],
                "differences": report["differences"],
                "fenced": report["fenced"],
            }
        )
        out["healthy"] = (
            out["in_flight"] == 0 and out["duplicates"] == 0 and out["consistent"] and out["violations"] == 0
        )
    finally:
        emb.close()
    return out


def check_live(spec: StoreURI, holder: dict[str, Any] | None) -> dict[str, Any]:
    """The read-only check of a store another process owns: nothing is run, nothing is written.

    The store is read twice, before and after the devices. A transaction in flight in the first read, or
    that moved between the two, may have touched the devices while they were read: the resources it locks
    are left out of the comparison ("busy"). Every other transaction was final before the devices were
    read, so there the model and the devices must agree."""
    assert spec.path is not None
    first = read_snapshot(spec.path, STANDARD)
    devices = spec.devices
    sim = read_devices(devices) if devices is not None and devices.is_file() else None
    second = read_snapshot(spec.path, STANDARD)
    if first is None or second is None:
        raise ConfigError(f"the tropic store at {spec.path} has no model yet", path=str(spec.path))
    before = {t.id: (t.state, len(t.steps)) for t in first.txns}
    busy: set[str] = set()
    for t in first.txns:
        if not t.final and t.state not in QUEUED:
            busy |= t.reads | t.writes
    for t in second.txns:
        if before.get(t.id) != (t.state, len(t.steps)):
            busy |= t.reads | t.writes
    model = first.model
    # Devices another backend drives (their ``driver`` names one: libvirt) are the holder's to read.
    others = {
        p
        for p, n in model.nodes.items()
        if n.kind in ("host", "storage_host", "router") and str(n.attrs.get("driver", "")) not in ("", "sim")
    }
    left_out = set(first.fenced) | set(second.fenced) | busy | others
    out = _report(first.txns, sim.duplicates() if sim is not None else [])
    out.update(
        {
            "read_only": True,
            "holder": holder,
            "violations": len(audit(model)),
            "fenced": sorted(first.fenced),
            "busy": sorted(busy),
            "not_read": sorted(others),
        }
    )
    if sim is None:
        # Devices other than a local sim file (libvirt, or a sim elsewhere) are the holder's to read.
        out.update({"devices": "not read", "consistent": None, "orphans": [], "differences": []})
    else:
        logical = without(project(model), left_out)
        physical = without(sim.inventory(), left_out)
        out.update(
            {
                "devices": str(devices),
                "consistent": logical == physical and not orphans(logical, physical),
                "orphans": orphans(logical, physical),
                "differences": differences(logical, physical),
            }
        )
    out["healthy"] = out["duplicates"] == 0 and out["consistent"] is not False and out["violations"] == 0
    return out


def _report(txns: list[Transaction], duplicate_steps: list[tuple[int, int, bool]]) -> dict[str, Any]:
    """What both checks count: states, requests of a workload, duplicates, FAILED transactions."""
    by_state: dict[str, int] = {}
    by_request: dict[int, int] = {}
    for t in txns:
        by_state[t.state.value] = by_state.get(t.state.value, 0) + 1
        idx = request_index(t)
        if idx is not None:
            by_request[idx] = by_request.get(idx, 0) + 1
    duplicate_requests = sum(1 for n in by_request.values() if n > 1)
    return {
        "submitted": len(txns),
        "by_state": by_state,
        "in_flight": sum(1 for t in txns if t.state not in FINAL),
        "duplicates": duplicate_requests + len(duplicate_steps),
        "failed": [{"id": t.id, "left_behind": t.left_behind} for t in txns if t.state is State.FAILED],
        "requests": len(by_request),
        "missing_requests": sorted(set(range(max(by_request, default=-1) + 1)) - set(by_request))[:20],
    }


__all__ = ["check_live", "check_store"]
