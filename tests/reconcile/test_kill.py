"""KILL during physical execution rolls back cleanly, and the watchdog rolls back the transactions of a
worker that died; after each, the model equals the devices."""

from __future__ import annotations

import threading

import pytest

from core.helpers import small_dc, spawn
from reconcile.kit import SAN, World, assert_consistent, world
from tropic.drivers import SimDriver, Step
from tropic.model import project
from tropic.reconcile import Reconciler
from tropic.txn import Controller, State
from tropic.txn.worker import Deadlines, LocalExecutor


def test_kill_during_a_device_call_rolls_back_after_it() -> None:
    with world() as w:
        c = w.controller
        hang = w.sim.hang(f"{SAN}/vol-k", action="export_volume", times=1, timeout=120)
        t = c.submit("spawn_vm", spawn("r1", 1, "k"))
        assert hang.entered.wait(30), "the export never reached the device"
        c.kill(t.id)
        assert t.kill_requested and not t.final
        w.sim.release(hang)  # the device answers: the export is done, then the kill takes effect
        c.wait(t, 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "killed"
        assert State.KILLED.value in t.times and State.ROLLING_BACK.value in t.times
        assert [(s.action, s.undo, s.status) for s in t.steps] == [
            ("clone_image", False, "done"),
            ("export_volume", False, "done"),
            ("unexport_volume", True, "done"),
            ("delete_volume", True, "done"),
        ]
        assert_consistent(w)


def test_kill_of_a_hung_call_rolls_back_at_its_deadline() -> None:
    with world(deadline=0.5) as w:
        c = w.controller
        hang = w.sim.hang(f"{SAN}/vol-k", action="export_volume", times=1, timeout=120)
        t = c.submit("spawn_vm", spawn("r1", 1, "k"))
        assert hang.entered.wait(30)
        c.kill(t.id)
        c.wait(t, 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "device_timeout"
        w.sim.release(hang, proceed=False)
        assert_consistent(w)


class WorkerDeath(BaseException):
    """Ends the thread it is raised in, like a worker process dying (nothing catches it)."""


class DyingSim(SimDriver):
    """A sim whose worker dies in the middle of one transaction's import step."""

    def __init__(self) -> None:
        super().__init__()
        self.kill_worker_on: str | None = None
        self.died = threading.Event()

    def execute(self, step: Step) -> None:
        if step.action == "import_volume" and step.args.get("volume") == self.kill_worker_on:
            self.kill_worker_on = None
            self.died.set()
            raise WorkerDeath
        super().execute(step)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_watchdog_rolls_back_the_transaction_of_a_dead_worker() -> None:
    model = small_dc()
    sim = DyingSim()
    sim.load(project(model))
    executor = LocalExecutor(sim, 3, deadlines=Deadlines(default=30))
    c = Controller(model, sim, executor=executor, watchdog=2.0).start()
    rec = Reconciler(c)
    try:
        sim.kill_worker_on = f"{SAN}/vol-doomed"
        t = c.submit("spawn_vm", spawn("r1", 1, "doomed"))
        assert sim.died.wait(30)
        others = [c.submit("spawn_vm", spawn("r1", 2, f"ok{i}")) for i in range(3)]
        c.wait(t, 60)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "killed"
        assert "watchdog" in t.error["message"] and State.KILLED.value in t.times
        assert [s.action for s in t.steps if s.undo] == [
            "delete_vm",
            "unimport_volume",
            "unexport_volume",
            "delete_volume",
        ]
        assert all(c.wait(o, 60).state is State.COMMITTED for o in others)  # two workers are left
        assert sim.list_volumes() == [f"{SAN}/vol-ok{i}" for i in range(3)]
        assert_consistent(World(model, sim, c, rec))
    finally:
        rec.close()
        c.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_watchdog_can_be_turned_on_while_the_controller_runs() -> None:
    """``Controller.watchdog`` set on a running controller takes effect: with it off, a dead worker's
    transaction stays STARTED; once set, it is rolled back."""
    model = small_dc()
    sim = DyingSim()
    sim.load(project(model))
    executor = LocalExecutor(sim, 2, deadlines=Deadlines(default=30))
    c = Controller(model, sim, executor=executor, watchdog=None).start()
    try:
        sim.kill_worker_on = f"{SAN}/vol-doomed"
        t = c.submit("spawn_vm", spawn("r1", 1, "doomed"))
        assert sim.died.wait(30)
        with pytest.raises(TimeoutError):
            c.wait(t, 1.0)  # nobody rolls it back: no watchdog
        assert t.state is State.STARTED
        c.watchdog = 0.5
        c.wait(t, 30)
        assert t.state is State.ABORTED and t.error is not None and "watchdog" in t.error["message"]
    finally:
        c.stop()


def test_a_worker_that_keeps_beating_is_left_alone() -> None:
    """A step waiting on a slow device is not a dead worker: the watchdog does not step in."""
    with world(deadline=30) as w:
        w.controller.watchdog = 1.0
        w.sim.latency = {"export_volume": 2.0, "*": 0.0}
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 1, "slow")), 30)
        assert t.state is State.COMMITTED
        assert_consistent(w)


def test_kill_during_the_last_step_still_rolls_back() -> None:
    with world() as w:
        c = w.controller
        hang = w.sim.hang("/compute/r1/host-01", action="create_vm", times=1, timeout=120)
        t = c.submit("spawn_vm", spawn("r1", 1, "late"))
        assert hang.entered.wait(30)
        c.kill(t.id)
        w.sim.release(hang)
        c.wait(t, 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "killed"
        assert next(s.action for s in t.steps if s.undo) == "delete_vm"
        assert "/compute/r1/host-01/late" not in w.sim.list_vms()
        assert_consistent(w)
