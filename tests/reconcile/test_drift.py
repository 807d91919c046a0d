"""Drift detection: each out-of-band event becomes drift records (path, attribute, model vs device, first
seen), fenced; nothing a running transaction is changing passes for drift; drift that goes away is
forgotten and its fence lifted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.helpers import spawn
from reconcile.kit import H1, H2, SAN, VM_A, VM_B, VM_C, VOL_A, World, assert_consistent, world
from tropic.drivers import Fault
from tropic.errors import UnknownResource
from tropic.model import project
from tropic.reconcile import Drift
from tropic.reconcile.compare import devices_in, logical_entry
from tropic.txn import State


def keyed(drifts: list[Drift]) -> dict[tuple[str, str], Drift]:
    return {d.key: d for d in drifts}


def test_consistent_datacenter_has_no_drift() -> None:
    with world() as w:
        assert w.reconciler.drift() == []
        assert w.reconciler.drift(VM_A) == []
        assert w.controller.fenced == {}


def test_the_reconciler_sees_the_model_as_project_does() -> None:
    with world() as w:
        inv = project(w.model)
        sections = {"host": "hosts", "storage_host": "storage", "router": "routers"}
        for device in devices_in(w.model, "/"):
            kind = w.model.nodes[device].kind
            assert logical_entry(w.model, device) == inv[sections[kind]][device]


def test_a_crashed_vm_is_one_fenced_record() -> None:
    with world() as w:
        before = time.time()
        w.sim.crash_vm(VM_A)
        drifts = w.reconciler.drift()
        assert [(d.path, d.attribute, d.logical, d.physical) for d in drifts] == [
            (VM_A, "state", "running", "stopped")
        ]
        d = drifts[0]
        assert d.kind == "vm" and d.device == H1 and before <= d.first_seen <= time.time()
        assert d.fenced_by == 0 and w.controller.fenced == {VM_A: 0}
        # Seen again later: the same record, first seen unchanged.
        again = w.reconciler.drift(H1)
        assert again[0].first_seen == d.first_seen and again[0].last_seen >= d.last_seen


def test_a_rebooted_host_stops_all_its_vms() -> None:
    with world() as w:
        w.sim.reboot_host(H1)
        got = keyed(w.reconciler.drift())
        assert set(got) == {(VM_A, "state"), (VM_B, "state")}
        assert set(w.controller.fenced) == {VM_A, VM_B}


def test_a_volume_deleted_by_hand() -> None:
    with world() as w:
        w.sim.drop_volume(VOL_A)
        (d,) = w.reconciler.drift()
        assert (d.path, d.attribute, d.logical, d.physical, d.kind) == (
            VOL_A,
            "exists",
            True,
            False,
            "volume",
        )
        assert w.controller.fenced == {VOL_A: 0}


def test_a_device_that_does_not_answer_is_unreachable_drift() -> None:
    with world(device_timeout=0.3) as w:
        hang = w.sim.hang(H2, timeout=60)
        (d,) = w.reconciler.drift(H2)
        assert (d.path, d.attribute, d.logical, d.physical) == (H2, "reachable", True, False)
        assert w.controller.fenced == {H2: 0}
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 2, "x")), 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "fenced"
        assert "reload or repair" in t.error["message"]
        # It answers again: the drift goes away on the next look and the fence is lifted.
        w.sim.release(hang)
        assert w.reconciler.drift(H2) == []
        assert w.controller.fenced == {}
        assert_consistent(w)


def test_drift_that_goes_away_is_forgotten_and_unfenced() -> None:
    with world() as w:
        w.sim.crash_vm(VM_A)
        assert w.reconciler.drift() != [] and VM_A in w.controller.fenced
        w.sim.hosts[H1]["vms"]["a"]["state"] = "running"  # an administrator starts it again
        assert w.reconciler.drift() == []
        assert w.controller.fenced == {}
        assert [h["how"] for h in w.reconciler.history] == ["vanished"]


def test_orphans_and_changed_attributes_are_found() -> None:
    with world() as w:
        with w.sim._lock:
            w.sim.hosts[H2]["vms"]["ghost"] = {
                "vcpus": 2,
                "memory_mib": 1024,
                "image": "",
                "volume": "",
                "state": "running",
            }
            w.sim.hosts[H2]["configs"].add("ghost")
            w.sim.hosts[H1]["vms"]["b"]["memory_mib"] = 999
            w.sim.sans[SAN]["volumes"]["vol-a"]["exported"] = False
        got = keyed(w.reconciler.drift())
        ghost = f"{H2}/ghost"
        assert got[(ghost, "exists")].logical is False and got[(ghost, "exists")].physical is True
        assert got[(ghost, "exists")].detail == {
            "vcpus": 2,
            "memory_mib": 1024,
            "image": "",
            "volume": "",
            "state": "running",
        }
        assert (got[(ghost, "config")].logical, got[(ghost, "config")].physical) == (False, True)
        assert (got[(VM_B, "memory_mib")].logical, got[(VM_B, "memory_mib")].physical) == (2048, 999)
        assert (got[(VOL_A, "exported")].logical, got[(VOL_A, "exported")].physical) == (True, False)
        assert set(w.controller.fenced) == {ghost, VM_B, VOL_A}


def test_drift_is_scoped_and_unknown_paths_are_refused() -> None:
    with world() as w:
        w.sim.crash_vm(VM_A)
        w.sim.crash_vm(VM_C)
        assert [d.path for d in w.reconciler.drift(VM_C)] == [VM_C]
        assert [d.path for d in w.reconciler.drift(H1)] == [VM_A]
        assert [d.path for d in w.reconciler.drift("/compute/r2")] == []
        assert {d.path for d in w.reconciler.drift("/compute")} == {VM_A, VM_C}
        assert [d.path for d in w.reconciler.drift(VM_C, scan=False)] == [VM_C]
        with pytest.raises(UnknownResource, match="no resource at /compute/r9"):
            w.reconciler.drift("/compute/r9")
        with pytest.raises(UnknownResource, match="not a resource path"):
            w.reconciler.drift("compute")


def test_leftovers_of_a_failed_transaction_are_drift_fenced_by_it() -> None:
    with world() as w:
        w.sim.inject(Fault(action="create_vm"))
        w.sim.inject(Fault(action="delete_volume", undo=True))
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 2, "bad")), 30)
        assert t.state is State.FAILED
        (d,) = w.reconciler.drift()
        assert (d.path, d.attribute, d.logical, d.physical) == (f"{SAN}/vol-bad", "exists", False, True)
        assert d.detail == {"image": f"{SAN}/img-ubuntu", "exported": False}
        assert d.fenced_by == t.id  # the FAILED transaction's fence stays its own


def test_transactions_on_the_devices_are_never_taken_for_drift(world_with_traffic: World) -> None:
    """Scan continuously while spawns, migrations and rollbacks run: not one false drift."""
    w = world_with_traffic
    c = w.controller
    stop = threading.Event()
    seen: list[Drift] = []

    def scan() -> None:
        while not stop.is_set():
            seen.extend(w.reconciler.drift())

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        w.sim.inject(Fault(action="import_volume", match={"volume": f"{SAN}/vol-t3"}))
        txns = [c.submit("spawn_vm", spawn("r1", 1 + i % 3, f"t{i}", memory_mib=512)) for i in range(8)]
        txns.append(c.submit("migrate_vm", {"vm": VM_C, "dest": H1}))
        txns += [
            c.submit("stop_vm", {"vm": VM_B}),
            c.submit("resize_vm", {"vm": VM_A, "vcpus": 2, "memory_mib": 1024}),
        ]
        for t in txns:
            c.wait(t, 60)
        assert sum(t.state is State.COMMITTED for t in txns) == len(txns) - 1
    finally:
        stop.set()
        scanner.join()
    assert seen == [], [d.describe() for d in seen]
    assert_consistent(w)


@pytest.fixture
def world_with_traffic() -> Iterator[World]:
    with world(latency=0.01) as w:
        yield w
