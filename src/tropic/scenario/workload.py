"""A long-running random workload against an embedded store, resumable after SIGKILL at any instant.

Request ``i`` of a workload is generated from ``(seed, i)`` and recorded in its transaction's
``submitter`` field, so a restarted run knows exactly which requests reached the store and continues with
the next one: nothing is lost and nothing is submitted twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tropic.drivers.sim import Fault, SimDriver
from tropic.errors import ConfigError
from tropic.model import VM, Host
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.service.embedded import open_embedded
from tropic.store.registry import parse_store_uri
from tropic.txn import FINAL, Controller, Transaction

PREFIX = "workload/"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    txns: int
    seed: int = 0
    fail_rate: float = 0.03  # probability that a forward device step fails
    undo_fail_rate: float = 0.0  # probability that an undo step fails (ends FAILED, fenced)
    window: int = 32  # at most this many transactions not final at once
    latency: float = 0.0  # simulated device seconds per action


def datacenter() -> Any:
    return build_datacenter(DatacenterSpec(regions=("us-east", "eu-west"), hosts_per_region=6))


def faults_for(spec: WorkloadSpec) -> list[Fault]:
    out = []
    if spec.fail_rate > 0:
        out.append(Fault(probability=spec.fail_rate, message="injected device fault"))
    if spec.undo_fail_rate > 0:
        out.append(Fault(probability=spec.undo_fail_rate, undo=True, message="injected undo fault"))
    return out


def request_index(t: Transaction) -> int | None:
    if not t.submitter.startswith(PREFIX):
        return None
    try:
        return int(t.submitter.rsplit("/", 1)[1])
    except ValueError:
        return None


def make_request(c: Controller, seed: int, i: int) -> tuple[str, dict[str, Any]] | None:
    """Request ``i``: a spawn, stop, start, migrate, resize, destroy or a constraint-violating spawn."""
    rng = random.Random(f"{seed}:{i}")

    def snapshot() -> tuple[list[str], list[str]]:
        nodes = c.model.nodes
        return (
            sorted(p for p, n in nodes.items() if n.kind == Host.kind),
            sorted(p for p, n in nodes.items() if n.kind == VM.kind),
        )

    hosts, vms = c.call(snapshot)
    kind = rng.choices(
        ["spawn", "stop", "start", "migrate", "destroy", "resize", "huge"], [40, 10, 10, 15, 15, 5, 5]
    )[0]
    if kind in ("spawn", "huge") or not vms:
        host = rng.choice(hosts)
        region = host.split("/")[2]
        memory = 10**6 if kind == "huge" else rng.choice([1024, 2048, 4096])
        return "spawn_vm", {
            "host": host,
            "name": f"w{i}",
            "image": f"/storage/{region}/san-1/img-ubuntu",
            "vcpus": rng.choice([1, 2]),
            "memory_mib": memory,
        }
    vm = rng.choice(vms)
    if kind == "migrate":
        region = vm.split("/")[2]
        same = [h for h in hosts if h.split("/")[2] == region]
        return "migrate_vm", {"vm": vm, "dest": rng.choice(same)}
    if kind == "resize":
        return "resize_vm", {
            "vm": vm,
            "vcpus": rng.choice([1, 2, 4]),
            "memory_mib": rng.choice([1024, 2048, 8192]),
        }
    return f"{kind}_vm", {"vm": vm}


def run_workload(store: str, spec: WorkloadSpec, progress: Progress | None = None) -> dict[str, Any]:
    """Submit requests ``next..spec.txns-1`` (``next`` read from the store) and run them all to the end."""
    emb = open_embedded(store, initial=datacenter, faults=faults_for(spec))
    if isinstance(emb.driver, SimDriver):
        emb.driver.latency = spec.latency
    c = emb.controller
    done_before = max((request_index(t) or -1 for t in c.transactions()), default=-1)
    c.start()
    try:
        outstanding: list[Transaction] = [t for t in c.transactions() if t.state not in FINAL]
        i = done_before + 1
        while i < spec.txns:
            outstanding = [t for t in outstanding if t.state not in FINAL]
            if len(outstanding) >= spec.window:
                c.wait(outstanding[0], 120)
                continue
            req = make_request(c, spec.seed, i)
            if req is not None:
                outstanding.append(c.submit(req[0], req[1], submitter=f"{PREFIX}{spec.seed}/{i}"))
            i += 1
            if progress is not None:
                progress(i, spec.txns)
        c.drain(600)
    finally:
        c.stop()
        emb.store.close()
        emb.driver.close()
    return {"submitted_now": max(0, spec.txns - done_before - 1), "resumed_from": done_before + 1}


def check_store(store: str) -> dict[str, Any]:
    """Recover the store (finishing whatever was queued or executing) and report its health."""
    path = parse_store_uri(store).path
    if path is not None and not path.exists():
        raise ConfigError(f"no tropic store at {path}", path=str(path))
    emb = open_embedded(store, initial=datacenter)
    c = emb.controller
    c.start()
    try:
        c.drain(600)
        report = c.check()
        txns = c.transactions()
        by_request: dict[int, int] = {}
        for t in txns:
            idx = request_index(t)
            if idx is not None:
                by_request[idx] = by_request.get(idx, 0) + 1
        duplicate_requests = sum(1 for n in by_request.values() if n > 1)
        duplicate_steps = emb.driver.duplicates() if isinstance(emb.driver, SimDriver) else []
        out: dict[str, Any] = {
            "submitted": len(txns),
            "by_state": c.states(),
            "in_flight": sum(1 for t in txns if t.state not in FINAL),
            "duplicates": duplicate_requests + len(duplicate_steps),
            "consistent": bool(report["consistent"]) and not report["orphans"],
            "violations": len(report["violations"]),
            "orphans": report["orphans"],
            "differences": report["differences"],
            "fenced": report["fenced"],
            "failed": [{"id": t.id, "left_behind": t.left_behind} for t in txns if t.state.value == "FAILED"],
            "requests": len(by_request),
            "missing_requests": sorted(set(range(max(by_request, default=-1) + 1)) - set(by_request))[:20],
        }
    finally:
        c.stop()
        emb.store.close()
        emb.driver.close()
    return out
