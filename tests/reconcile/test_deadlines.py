"""Deadlines of physical actions: a hung device call is abandoned at its deadline, the step counts as
failed, the "did it happen?" probe decides whether its undo runs, and the transaction rolls back. An undo
that fails or hangs leaves a FAILED transaction whose fenced resources block conflicting transactions
until `repair` makes them consistent."""

from __future__ import annotations

import time

import pytest

from core.helpers import spawn
from reconcile.kit import H1, H2, SAN, VM_A, assert_consistent, world
from tropic.drivers import Fault, SimDriver, Step
from tropic.model import project
from tropic.txn import State

DEADLINE = 0.5
HUNG_S = 120.0  # the device's own give-up time: abandoning at the deadline is far from waiting it out


def test_a_hung_call_is_abandoned_and_rolled_back_within_its_deadline() -> None:
    with world(deadline=DEADLINE) as w:
        hang = w.sim.hang(H1, action="create_vm", timeout=HUNG_S)
        started = time.monotonic()
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 1, "slow")), 60)
        elapsed = time.monotonic() - started
        assert hang.entered.is_set() and not hang.released.is_set()  # the device never answered
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "device_timeout"
        assert "no answer within 0.5 s" in t.error["message"] and t.error["path"] == H1
        failed = next(s for s in t.steps if s.status == "failed")
        assert failed.action == "create_vm" and DEADLINE <= failed.finished - failed.started < HUNG_S / 2
        assert elapsed < HUNG_S / 2  # nowhere near the device's own give-up time
        # The probe saw no VM: the create_vm undo is skipped, the earlier steps are undone in reverse.
        undo = [(s.action, s.status) for s in t.steps if s.undo]
        assert undo == [
            ("delete_vm", "skipped"),
            ("unimport_volume", "done"),
            ("unexport_volume", "done"),
            ("delete_volume", "done"),
        ]
        w.sim.release(hang, proceed=False)
        assert_consistent(w)


def test_a_hung_call_that_did_its_work_is_undone() -> None:
    """The device created the VM, then stopped answering: the probe finds it and the undo deletes it."""
    with world(deadline=DEADLINE) as w:
        hang = w.sim.hang(H1, action="create_vm", effect=True, timeout=120)
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 1, "slow")), 60)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "device_timeout"
        assert next((s.action, s.status) for s in t.steps if s.undo) == ("delete_vm", "done")
        w.sim.release(hang, proceed=False)
        assert f"{H1}/slow" not in w.sim.list_vms()
        assert_consistent(w)


def test_undo_failure_fences_until_repair_makes_it_consistent() -> None:
    with world() as w:
        c = w.controller
        w.sim.inject(Fault(action="create_vm"))
        w.sim.inject(Fault(action="delete_volume", undo=True))
        failed = c.wait(c.submit("spawn_vm", spawn("r1", 2, "bad")), 30)
        assert failed.state is State.FAILED and failed.left_behind == [f"{SAN}/vol-bad"]
        assert c.fenced == {f"{SAN}/vol-bad": failed.id}
        w.sim.clear_faults()
        # A conflicting transaction (it would write the same volume) is refused, with the reason.
        blocked = c.wait(c.submit("spawn_vm", spawn("r1", 1, "bad")), 30)
        assert blocked.state is State.ABORTED and blocked.error is not None
        assert blocked.error["code"] == "fenced" and blocked.error["path"] == f"{SAN}/vol-bad"
        assert f"failed transaction {failed.id}" in blocked.error["message"]
        # A transaction elsewhere goes ahead.
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, "good")), 30).state is State.COMMITTED
        result = w.reconciler.repair(f"{SAN}/vol-bad")
        assert [(t["procedure"], t["state"]) for t in result.transactions] == [
            ("remove_orphan_volume", "COMMITTED")
        ]
        assert result.consistent and result.unfenced == [f"{SAN}/vol-bad"]
        assert c.fenced == {}
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, "bad")), 30).state is State.COMMITTED
        assert_consistent(w)


def test_a_hung_undo_fails_the_transaction_and_repair_cleans_up() -> None:
    with world(deadline=DEADLINE) as w:
        c = w.controller
        w.sim.inject(Fault(action="create_vm"))
        hang = w.sim.hang(f"{SAN}/vol-x", action="unexport_volume", timeout=120)
        t = c.wait(c.submit("spawn_vm", spawn("r1", 2, "x")), 60)
        assert t.state is State.FAILED and t.error is not None
        assert t.error["undo_error"]["code"] == "device_timeout"
        assert set(t.left_behind) == {f"{SAN}/vol-x"} and c.fenced == {f"{SAN}/vol-x": t.id}
        w.sim.clear_faults()
        w.sim.release(hang, proceed=False)
        drift = {d.key for d in w.reconciler.drift()}
        assert drift == {(f"{SAN}/vol-x", "exists")}  # an exported volume the model does not have
        assert w.reconciler.repair(SAN).consistent
        assert_consistent(w)


def test_hang_on_a_whole_host_and_the_undo_still_reaches_the_storage() -> None:
    """Every call on host-02 hangs (the host is gone): the spawn's import is abandoned; the storage
    steps are undone; the import's own undo hangs too, so the transaction is FAILED and fenced."""
    with world(deadline=DEADLINE, device_timeout=DEADLINE) as w:
        c = w.controller
        hang = w.sim.hang(H2, timeout=120)
        t = c.wait(c.submit("spawn_vm", spawn("r1", 2, "y")), 60)
        assert t.state is State.FAILED
        assert t.left_behind == [H2, f"{SAN}/vol-y"] and c.fenced == dict.fromkeys(t.left_behind, t.id)
        assert (H2, "reachable") in {d.key for d in w.reconciler.drift(H2)}
        w.sim.release(hang, proceed=False)
        result = w.reconciler.repair("/")
        assert [x["procedure"] for x in result.transactions] == ["remove_orphan_volume"]
        assert result.consistent and sorted(result.unfenced) == sorted(t.left_behind)
        assert_consistent(w)


@pytest.mark.parametrize(
    ("action", "path", "args"),
    [
        ("create_vm", H1, {"name": "p", "vcpus": 1, "memory_mib": 64, "image": "", "volume": ""}),
        ("create_config", H1, {"name": "cfg"}),
        ("clone_image", SAN, {"image": "img-ubuntu", "volume": "vol-p"}),
        ("stop", VM_A, {}),
        ("resize", VM_A, {"vcpus": 3, "memory_mib": 999}),
        ("set_next_hop", "/network/r1/router-1", {"next_hop": "/network/r1/router-2"}),
    ],
)
def test_probe_tells_whether_a_step_happened(action: str, path: str, args: dict[str, object]) -> None:
    with world() as w:
        step = Step(99, 0, path, action, args)
        assert w.sim.probe(step) is False
        w.sim.execute(step)
        assert w.sim.probe(step) is True


def test_probe_of_an_unknown_action_cannot_tell() -> None:
    sim = SimDriver()
    assert sim.probe(Step(1, 0, "/x", "frobnicate", {})) is None


def test_reload_of_a_vm_reads_its_host_only() -> None:
    with world() as w:
        part = w.sim.reload(VM_A)
        assert set(part["hosts"]) == {H1} and part["storage"] == {} and part["routers"] == {}
        assert w.sim.reload("/") == w.sim.inventory() == project(w.model)
