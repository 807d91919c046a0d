"""Reload (device -> model) and repair (model -> device), per resource and per subtree: each ends with the
model equal to the devices and the fences lifted; reload is persisted like a transaction's delta and
refused when it would break a constraint; repairs are ordinary transactions."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.helpers import small_dc, spawn
from reconcile.kit import (
    H1,
    H2,
    SAN,
    VM_A,
    VM_B,
    VM_C,
    VOL_A,
    VOL_C,
    assert_consistent,
    populate,
    world,
)
from tropic.drivers import SimDriver
from tropic.errors import ConstraintViolation, UnknownResource
from tropic.model import STANDARD, STOPPED, project
from tropic.reconcile import Reconciler
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State

GHOST = f"{H2}/ghost"


def plant_ghost(sim: SimDriver, memory_mib: int = 1024) -> None:
    """A VM on host-02 that tropic never created (an administrator's, or a leftover)."""
    with sim._lock:
        sim.hosts[H2]["vms"]["ghost"] = {
            "vcpus": 1,
            "memory_mib": memory_mib,
            "image": "",
            "volume": "",
            "state": "running",
        }
        sim.hosts[H2]["configs"].add("ghost")


def test_reload_one_vm_writes_the_device_state_into_the_model() -> None:
    with world() as w:
        w.sim.crash_vm(VM_A)
        w.sim.crash_vm(VM_C)
        assert len(w.reconciler.drift()) == 2
        result = w.reconciler.reload(VM_A)
        assert [(d.path, d.attribute) for d in result.changed] == [(VM_A, "state")]
        assert result.unfenced == [VM_A]
        assert w.model.get(VM_A).state == STOPPED
        assert w.controller.fenced == {VM_C: 0}  # the other drift is untouched
        assert w.reconciler.reload("/compute").unfenced == [VM_C]
        assert_consistent(w)


def test_reload_a_subtree_adopts_orphans_and_forgets_what_vanished() -> None:
    with world() as w:
        plant_ghost(w.sim)
        w.sim.drop_volume(VOL_C)
        with w.sim._lock:
            w.sim.hosts[H1]["vms"]["b"]["vcpus"] = 3
        result = w.reconciler.reload("/")
        assert {(d.path, d.attribute) for d in result.changed} == {
            (GHOST, "exists"),
            (GHOST, "config"),
            (VM_B, "vcpus"),
            (VOL_C, "exists"),
        }
        assert w.model.get(GHOST).memory_mib == 1024
        assert VOL_C not in w.model and w.model.get(VM_B).vcpus == 3
        assert_consistent(w)


def test_reload_refuses_to_break_a_constraint_and_repair_resolves_it() -> None:
    with world() as w:
        plant_ghost(w.sim, memory_mib=10**6)  # more memory than host-02 has
        with pytest.raises(ConstraintViolation, match=r"Host\.memory_fits") as e:
            w.reconciler.reload(H2)
        assert e.value.path == H2 and "repair it instead" in e.value.message
        assert GHOST not in w.model and GHOST in w.controller.fenced  # nothing changed, still fenced
        result = w.reconciler.repair(H2)
        assert [(t["procedure"], t["state"]) for t in result.transactions] == [
            ("remove_orphan_vm", "COMMITTED")
        ]
        assert result.consistent and sorted(result.unfenced) == [GHOST]
        assert_consistent(w)


def test_repair_a_subtree_runs_normal_transactions_in_stages() -> None:
    with world() as w:
        w.sim.drop_volume(VOL_A)
        w.sim.crash_vm(VM_B)
        with w.sim._lock:
            del w.sim.hosts[H2]["vms"]["c"]  # the hypervisor lost VM c and its configuration
            w.sim.hosts[H2]["configs"].discard("c")
            w.sim.hosts[H1]["volumes"].discard(VOL_A)
            w.sim.routers["/network/r1/router-1"]["next_hop"] = "/network/r1/router-2"
        before = project(w.model)
        result = w.reconciler.repair("/")
        procs = [(t["procedure"], t["args"], t["state"]) for t in result.transactions]
        assert procs == [
            ("recreate_volume", {"volume": VOL_A}, "COMMITTED"),
            ("restore_import", {"host": H1, "volume": VOL_A}, "COMMITTED"),
            ("recreate_vm", {"vm": VM_C}, "COMMITTED"),
            ("restore_vm_state", {"vm": VM_B}, "COMMITTED"),
            ("restore_next_hop", {"router": "/network/r1/router-1"}, "COMMITTED"),
        ]
        assert result.consistent and result.remaining == []
        assert project(w.model) == before  # repair changes the devices, never the model
        for t in w.controller.transactions():
            if t.submitter == "reconciler":
                assert t.actions and t.state is State.COMMITTED  # simulated, locked, replayed as usual
        assert_consistent(w)


def test_repair_is_checked_like_any_transaction() -> None:
    """A repair procedure is simulated first: one that cannot apply aborts before any device call."""
    with world() as w:
        calls = w.sim.calls
        t = w.controller.wait(w.controller.submit("restore_vm_state", {"vm": f"{H1}/nope"}), 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "unknown_resource"
        assert w.sim.calls == calls


def test_reload_and_repair_refuse_unknown_paths() -> None:
    with world() as w:
        with pytest.raises(UnknownResource, match="/compute/r1/host-09"):
            w.reconciler.reload("/compute/r1/host-09")
        with pytest.raises(UnknownResource):
            w.reconciler.repair("/nowhere")


def test_reload_and_drift_fences_are_durable(tmp_path: Path) -> None:
    store_path = tmp_path / "store.db"
    model = small_dc()
    sim = SimDriver(state_file=tmp_path / "devices.db")
    sim.load(project(model))
    c = Controller.open(SQLiteStore(store_path), sim, initial=lambda: model).start()
    populate(c)
    rec = Reconciler(c)
    sim.crash_vm(VM_A)
    sim.crash_vm(VM_B)
    rec.reload(VM_A)
    assert rec.drift() != [] and c.fenced == {VM_B: 0}
    rec.close()
    c.stop()
    sim.close()

    # Restart: the reload is in the model, the drift fence is still there; a scan finds the drift again.
    sim = SimDriver(state_file=tmp_path / "devices.db")
    store = SQLiteStore(store_path)
    restored = store.restore(STANDARD)
    assert restored is not None and restored.fenced == {VM_B: 0}
    assert restored.model.nodes[VM_A].attrs["state"] == STOPPED
    c = Controller.open(store, sim).start()
    rec = Reconciler(c)
    try:
        assert [(d.path, d.fenced_by) for d in rec.drift()] == [(VM_B, 0)]
        assert rec.repair(VM_B).consistent and c.fenced == {}
        assert project(c.model) == sim.inventory()
    finally:
        rec.close()
        c.stop()
        sim.close()


def test_a_drift_fence_outlives_a_restart_and_goes_once_the_device_is_fixed(tmp_path: Path) -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    store = tmp_path / "s.db"
    c = Controller.open(SQLiteStore(store), sim, initial=lambda: model).start()
    populate(c)
    rec = Reconciler(c)
    sim.crash_vm(VM_A)
    rec.drift()
    rec.close()
    c.stop()
    with sim._lock:
        sim.hosts[H1]["vms"]["a"]["state"] = "running"  # fixed by hand while tropic was down
    c = Controller.open(SQLiteStore(store), sim).start()
    rec = Reconciler(c)
    try:
        assert c.fenced == {VM_A: 0}
        t = c.wait(c.submit("spawn_vm", spawn("r1", 1, "x")), 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "fenced"
        assert rec.drift() == [] and c.fenced == {}  # the first scan lifts it
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, "x")), 30).state is State.COMMITTED
    finally:
        rec.close()
        c.stop()


def test_nothing_to_do_is_a_quiet_success() -> None:
    with world() as w:
        assert w.reconciler.reload("/").changed == []
        r = w.reconciler.repair(SAN)
        assert r.consistent and r.transactions == [] and r.unfenced == []
        assert_consistent(w)
