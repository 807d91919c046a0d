"""The transaction lifecycle on the sim driver: commit, abort, rollback, failure with fencing, kill,
deferral in FIFO order, and clear errors for bad input."""

from __future__ import annotations

import pytest

from core.helpers import WAIT_S, assert_invariants, small_dc, spawn, until, vm
from tropic.drivers import Fault, SimDriver
from tropic.errors import ControllerStopped, InvalidArguments, UnknownProcedure, UnknownTransaction
from tropic.model import Model, project
from tropic.txn import TRANSITIONS, Controller, State, Transaction, move
from tropic.txn.scheduler import Scheduler


def run(c: Controller, procedure: str, args: dict[str, object]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def test_spawn_migrate_resize_stop_start_destroy(ctl: Controller, sim: SimDriver) -> None:
    t = run(ctl, "spawn_vm", spawn("r1", 1, "a"))
    assert t.state is State.COMMITTED, t.error
    assert [a.action for a in t.actions] == ["clone_image", "export_volume", "import_volume", "create_vm"]
    assert sim.list_vms() == [vm("r1", 1, "a")]
    assert (
        run(ctl, "migrate_vm", {"vm": vm("r1", 1, "a"), "dest": "/compute/r1/host-02"}).state
        is State.COMMITTED
    )
    assert sim.list_vms() == [vm("r1", 2, "a")]
    assert sim.list_configs() == [vm("r1", 2, "a")]
    assert (
        run(ctl, "resize_vm", {"vm": vm("r1", 2, "a"), "vcpus": 4, "memory_mib": 4096}).state
        is State.COMMITTED
    )
    assert run(ctl, "stop_vm", {"vm": vm("r1", 2, "a")}).state is State.COMMITTED
    assert run(ctl, "start_vm", {"vm": vm("r1", 2, "a")}).state is State.COMMITTED
    t = run(ctl, "destroy_vm", {"vm": vm("r1", 2, "a")})
    assert t.state is State.COMMITTED
    assert sim.list_vms() == [] and sim.list_volumes() == [] and sim.list_configs() == []
    assert_invariants(ctl)


def test_constraint_violation_aborts_before_any_device(ctl: Controller, sim: SimDriver) -> None:
    calls = sim.calls
    t = run(ctl, "spawn_vm", spawn("r1", 1, "huge", memory_mib=10**6))
    assert t.state is State.ABORTED
    assert t.violation is not None and t.violation.constraint == "Host.memory_fits"
    assert t.violation.path == "/compute/r1/host-01"
    assert t.error is not None and t.error["code"] == "constraint_violation"
    assert sim.calls == calls and t.steps == []
    assert_invariants(ctl)


def test_procedure_error_aborts_with_resource_named(ctl: Controller) -> None:
    t = run(ctl, "start_vm", {"vm": "/compute/r1/host-01/ghost"})
    assert t.state is State.ABORTED and t.error is not None
    assert t.error["code"] == "unknown_resource" and t.error["path"] == "/compute/r1/host-01/ghost"
    run(ctl, "spawn_vm", spawn("r1", 1, "a"))
    t = run(ctl, "start_vm", {"vm": vm("r1", 1, "a")})
    assert t.state is State.ABORTED and "already running" in str(t.error)


def test_bad_input_is_refused_before_a_record_exists(ctl: Controller) -> None:
    before = len(ctl.transactions())
    with pytest.raises(UnknownProcedure, match="unknown procedure 'spawn'"):
        ctl.submit("spawn", {})
    with pytest.raises(InvalidArguments, match="'vcpus' must be integer"):
        ctl.submit("spawn_vm", {**spawn("r1", 1, "a"), "vcpus": "two"})
    with pytest.raises(InvalidArguments, match="'vcpus' must be integer"):
        ctl.submit("spawn_vm", {**spawn("r1", 1, "a"), "vcpus": True})
    with pytest.raises(InvalidArguments, match="missing argument 'image'"):  # host is optional
        ctl.submit("spawn_vm", {"name": "a"})
    with pytest.raises(InvalidArguments, match="unknown argument"):
        ctl.submit("spawn_vm", {**spawn("r1", 1, "a"), "color": "red"})
    with pytest.raises(UnknownTransaction):
        ctl.get(10**6)
    assert len(ctl.transactions()) == before
    t = run(ctl, "spawn_vm", spawn("r1", 1, "a") | {"host": "not-a-path"})
    assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "unknown_resource"
    assert_invariants(ctl)


def test_submit_to_stopped_controller_is_refused(model: Model, sim: SimDriver) -> None:
    with pytest.raises(ControllerStopped):
        Controller(model, sim).submit("spawn_vm", spawn("r1", 1, "a"))


@pytest.mark.parametrize("failing", ["clone_image", "export_volume", "import_volume", "create_vm"])
@pytest.mark.parametrize("after", [False, True])
def test_failed_step_rolls_back_without_orphans(
    ctl: Controller, sim: SimDriver, failing: str, after: bool
) -> None:
    run(ctl, "spawn_vm", spawn("r1", 1, "ok"))
    before_model = project(ctl.model)
    sim.inject(Fault(action=failing, after=after))
    t = run(ctl, "spawn_vm", spawn("r1", 1, "bad"))
    assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "device_fault"
    assert State.ROLLING_BACK.value in t.times
    undone = [s.action for s in t.steps if s.undo]
    forward = [s.action for s in t.steps if not s.undo]
    assert forward[-1] == failing
    expected = {
        "clone_image": "delete_volume",
        "export_volume": "unexport_volume",
        "import_volume": "unimport_volume",
    }
    expected["create_vm"] = "delete_vm"
    assert undone == [expected[a] for a in reversed(forward)]
    assert project(ctl.model) == before_model
    assert sim.list_vms() == [vm("r1", 1, "ok")] and sim.list_volumes() == ["/storage/r1/san-1/vol-ok"]
    assert_invariants(ctl)


def test_failed_undo_ends_failed_lists_and_fences(ctl: Controller, sim: SimDriver) -> None:
    sim.inject(Fault(action="create_vm"))
    sim.inject(Fault(action="delete_volume", undo=True))
    t = run(ctl, "spawn_vm", spawn("r1", 1, "bad"))
    assert t.state is State.FAILED
    assert t.left_behind == ["/storage/r1/san-1/vol-bad"]
    assert t.error is not None and t.error["undo_error"]["code"] == "device_fault"
    assert ctl.fenced == {"/storage/r1/san-1/vol-bad": t.id}
    assert sim.list_volumes() == ["/storage/r1/san-1/vol-bad"]  # exactly what is listed
    sim.clear_faults()
    blocked = run(ctl, "spawn_vm", spawn("r1", 2, "bad"))
    assert blocked.state is State.ABORTED and blocked.error is not None
    assert blocked.error["code"] == "fenced" and blocked.error["path"] == "/storage/r1/san-1/vol-bad"
    elsewhere = run(ctl, "spawn_vm", spawn("r1", 2, "good"))
    assert elsewhere.state is State.COMMITTED
    assert_invariants(ctl)


def test_kill_during_physical_execution_rolls_back(model: Model) -> None:
    sim = SimDriver()
    sim.load(project(model))
    held = sim.hang("/compute/r1/host-01", action="import_volume", timeout=120)  # step 3 of 4
    with Controller(model, sim) as c:
        t = c.submit("spawn_vm", spawn("r1", 1, "k"))
        assert held.entered.wait(WAIT_S)
        c.kill(t.id)
        sim.release(held)  # the step ends; the kill rolls back what was done
        c.wait(t, WAIT_S)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "killed"
        assert State.KILLED.value in t.times and State.ROLLING_BACK.value in t.times
        assert any(s.undo for s in t.steps)
        assert sim.list_volumes() == []
        assert_invariants(c)


def test_kill_deferred_transaction(model: Model) -> None:
    sim = SimDriver()
    sim.load(project(model))
    held = sim.hang("/compute/r1/host-01", action="create_vm", times=1, timeout=120)
    with Controller(model, sim) as c:
        first = c.submit("spawn_vm", spawn("r1", 1, "a"))
        second = c.submit("spawn_vm", spawn("r1", 1, "b"))
        assert held.entered.wait(WAIT_S)  # first holds host-01 ...
        until(lambda: second.state is State.DEFERRED, "the second spawn deferred")  # ... second waits
        c.kill(second.id)
        c.wait(second, WAIT_S)
        sim.release(held)
        assert second.state is State.ABORTED and second.steps == []
        assert c.wait(first, WAIT_S).state is State.COMMITTED
        assert_invariants(c)


def test_conflicts_deferred_and_run_in_fifo_order() -> None:
    m = small_dc(hosts=3, memory_mib=10**6)
    sim = SimDriver()
    sim.load(project(m))
    held = sim.hang("/compute/r1/host-01", action="create_vm", times=1, timeout=120)
    with Controller(m, sim, workers=8) as c:
        same = [c.submit("spawn_vm", spawn("r1", 1, f"s{i}")) for i in range(5)]
        assert held.entered.wait(WAIT_S)  # the first holds host-01: the other four conflict with it
        until(lambda: all(t.deferrals > 0 for t in same[1:]), "the later spawns deferred")
        sim.release(held)
        assert c.drain(WAIT_S)
        assert all(t.state is State.COMMITTED for t in same)
        assert sum(t.deferrals > 0 for t in same) >= 3
        starts = [t.times[State.STARTED.value] for t in same]
        assert starts == sorted(starts), "same-host transactions must start in submission order"
        assert_invariants(c)


def test_deferred_transaction_is_not_starved() -> None:
    """An older deferred transaction reserves its locks: newer ones that conflict wait behind it."""
    m = small_dc(hosts=3, memory_mib=10**6)
    sim = SimDriver()
    sim.load(project(m))
    with Controller(m, sim, workers=8) as c:
        c.wait(c.submit("spawn_vm", spawn("r1", 1, "mover")), WAIT_S)
        held = sim.hang("/compute/r1/host-02", action="create_vm", times=1, timeout=120)
        holder = c.submit("spawn_vm", spawn("r1", 2, "holder"))  # holds host-02
        assert held.entered.wait(WAIT_S)
        old = c.submit(
            "migrate_vm", {"vm": vm("r1", 1, "mover"), "dest": "/compute/r1/host-02"}
        )  # needs 01+02
        until(lambda: old.state is State.DEFERRED, "the migration deferred behind the holder")
        newer = [
            c.submit("resize_vm", {"vm": vm("r1", 1, "mover"), "vcpus": 2, "memory_mib": 1024 + i})
            for i in range(3)
        ]
        until(lambda: all(t.deferrals >= 1 for t in newer), "the resizes deferred behind the migration")
        sim.release(held)
        assert c.drain(WAIT_S)
        assert holder.state is State.COMMITTED and old.state is State.COMMITTED
        # The newer resizes could have run at once (host-01 was free) but waited behind the older deferred
        # migration; simulated after it, they find the VM gone from host-01.
        for t in newer:
            assert t.deferrals >= 1
            assert t.state is State.ABORTED and t.error is not None
            assert t.error["path"] == vm("r1", 1, "mover")
        assert_invariants(c)


def test_states_and_transitions_are_data() -> None:
    t = Transaction(1, "spawn_vm", {})
    move(t, State.STARTED)
    with pytest.raises(Exception, match="illegal transition STARTED -> SUBMITTED"):
        move(t, State.SUBMITTED)
    assert (State.COMMITTED, State.ABORTED) not in TRANSITIONS
    finals = {State.COMMITTED, State.ABORTED, State.FAILED}
    assert not any(old in finals for old, _ in TRANSITIONS)


def test_plan_changes_nothing(ctl: Controller, sim: SimDriver) -> None:
    before = project(ctl.model)
    calls = sim.calls
    p = ctl.plan("spawn_vm", spawn("r1", 1, "p"))
    assert p.ok and [a.action for a in p.actions] == [
        "clone_image",
        "export_volume",
        "import_volume",
        "create_vm",
    ]
    bad = ctl.plan("spawn_vm", spawn("r1", 1, "p", memory_mib=10**6))
    assert not bad.ok and bad.violations[0].constraint == "Host.memory_fits"
    assert project(ctl.model) == before and sim.calls == calls and ctl.transactions() == []
    d = p.to_dict()
    assert d["locks"] == {
        "read": ["/storage/r1/san-1/img-ubuntu"],
        # /compute/r1/#p: the VM name p in region r1 (tropic.model.index), not a resource
        "write": ["/compute/r1/#p", "/compute/r1/host-01", "/storage/r1/san-1/vol-p"],
    }


def test_a_dead_logical_thread_fails_callers_fast(model: Model, sim: SimDriver) -> None:
    """If the store breaks, callers get a clear ControllerStopped instead of waiting forever."""
    from tropic.errors import StoreError
    from tropic.store.base import MemoryStore

    class BrokenStore(MemoryStore):
        def commit(self) -> None:
            raise StoreError("disk full")

    c = Controller(model, sim, store=BrokenStore()).start()
    until(lambda: not c.running, "the controller stopping")
    assert not c.running and c.fatal is not None and "disk full" in c.fatal.message
    with pytest.raises(ControllerStopped, match="disk full"):
        c.submit("spawn_vm", spawn("r1", 1, "a"))
    with pytest.raises(ControllerStopped, match="disk full"):
        c.check()
    c.stop()


def test_a_release_looks_only_at_the_transactions_it_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long queue deferred behind one busy host must not be re-examined at every release elsewhere: each
    release costs the transactions it blocked, not the whole queue (and FIFO order still holds)."""
    m = small_dc(hosts=3, memory_mib=10**6)
    sim = SimDriver()
    sim.load(project(m))
    checks: list[int] = []
    real = Scheduler.blocker

    def counting(self: Scheduler, txn: int, wanted: dict[str, int]) -> int | None:
        checks.append(txn)
        return real(self, txn, wanted)

    monkeypatch.setattr(Scheduler, "blocker", counting)
    with Controller(m, sim, workers=4) as c:
        hang = sim.hang("/compute/r1/host-01", action="create_vm", timeout=60)
        first = c.submit("spawn_vm", spawn("r1", 1, "first"))
        assert hang.entered.wait(WAIT_S)
        queued = [c.submit("spawn_vm", spawn("r1", 1, f"q{i}")) for i in range(40)]
        until(lambda: all(t.state is State.DEFERRED for t in queued), "the queue deferred")
        checks.clear()
        others = [c.wait(c.submit("spawn_vm", spawn("r1", 2, f"o{i}")), WAIT_S) for i in range(30)]
        assert all(t.state is State.COMMITTED for t in others)
        queued_ids = {t.id for t in queued}
        assert not queued_ids & set(checks), "releases on host-02 re-examined the queue on host-01"
        sim.release(hang)
        c.drain(WAIT_S)
        assert first.state is State.COMMITTED and all(t.state is State.COMMITTED for t in queued)
        starts = [t.times[State.STARTED.value] for t in queued]
        assert starts == sorted(starts), "the queue must start in submission order"
        assert_invariants(c)


def test_a_destroy_submitted_behind_its_deferred_spawn_waits_for_it() -> None:
    """Conflicting transactions see each other's effects in submission order: a destroy submitted while
    its VM's spawn is still deferred is not simulated against a model without the VM (it would abort with
    unknown_resource); it waits behind the spawn and then destroys the VM."""
    m = small_dc(hosts=3, memory_mib=10**6)
    sim = SimDriver()
    sim.load(project(m))
    with Controller(m, sim, workers=4) as c:
        hang = sim.hang("/compute/r1/host-01", action="create_vm", timeout=60)
        first = c.submit("spawn_vm", spawn("r1", 1, "first"))
        assert hang.entered.wait(WAIT_S)
        spawned = c.submit("spawn_vm", spawn("r1", 1, "later"))
        destroy = c.submit("destroy_vm", {"vm": vm("r1", 1, "later")})
        elsewhere = c.submit("destroy_vm", {"vm": vm("r1", 2, "never-spawned")})
        c.wait(elsewhere, WAIT_S)  # nothing older and deferred touches host-02: it aborts at once
        assert elsewhere.state is State.ABORTED and elsewhere.error is not None
        assert elsewhere.error["code"] == "unknown_resource"
        never = c.submit("destroy_vm", {"vm": vm("r1", 1, "never-spawned")})
        until(lambda: never.state is not State.SUBMITTED, "the last destroy simulated")
        assert destroy.state is State.DEFERRED and spawned.state is State.DEFERRED
        assert never.state is State.DEFERRED  # the older spawn on host-01 could have made it
        sim.release(hang)
        c.drain(WAIT_S)
        assert [first.state, spawned.state, destroy.state] == [State.COMMITTED] * 3, destroy.error
        assert never.state is State.ABORTED and never.error is not None
        assert never.error["code"] == "unknown_resource"
        assert destroy.times[State.STARTED.value] > spawned.times[State.COMMITTED.value]
        assert "/compute/r1/host-01/later" not in c.model.nodes
        assert_invariants(c)
