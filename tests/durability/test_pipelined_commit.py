"""Group commit on the store writer thread: the logical thread never waits for the disk, yet nothing is
announced or reaches a device before the store has it, batches that queue up during a slow write go out
in one write, and a failed write stops the controller without announcing anything."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from core.helpers import assert_invariants, small_dc, spawn, vm
from tropic.drivers import SimDriver
from tropic.errors import ControllerStopped, StoreError
from tropic.model import STANDARD, project
from tropic.scenario import host_path
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State

GATE_S = 180.0  # a closed gate holds a write this long at most (longer than any wait of the tests)
WAIT_S = 60.0  # generous: how long the tests wait for what they expect


def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.01)


class GatedStore(SQLiteStore):
    """A SQLite store whose writes wait at a gate (a slow or stuck disk) and can be made to fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # a write is held at the gate
        self.fail: StoreError | None = None
        self.sizes: list[int] = []  # batches per write
        self.sealed = 0  # batches the logical thread sealed and handed to the writer

    def seal(self) -> object:
        batch = super().seal()
        self.sealed += 1
        return batch

    def write(self, batches: Sequence[object]) -> None:
        if not self.gate.is_set():
            self.waiting.set()
        self.gate.wait(GATE_S)
        if self.fail is not None:
            raise self.fail
        self.sizes.append(len(batches))
        super().write(batches)


def on_device(sim: SimDriver, host: int, name: str) -> bool:
    return name in sim.inventory()["hosts"][host_path("r1", host)]["vms"]


def stored_ids(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM txns")}
    finally:
        conn.close()


def open_controller(tmp_path: Path) -> tuple[Controller, GatedStore, SimDriver]:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    store = GatedStore(tmp_path / "s.db")
    c = Controller.open(store, sim, initial=lambda: model).start()
    return c, store, sim


def test_nothing_is_announced_or_sent_to_a_device_before_it_is_written(tmp_path: Path) -> None:
    c, store, sim = open_controller(tmp_path)
    try:
        store.gate.clear()  # the disk stalls
        t = c.submit("spawn_vm", spawn("r1", 1, "a"))
        assert store.waiting.wait(WAIT_S)
        # The logical thread went on: it simulated, locked and applied the spawn in memory ...
        until(lambda: t.state is State.STARTED and vm("r1", 1, "a") in c.model, "the spawn applied in memory")
        # ... and still answers (a dry run runs on the logical thread) while the write is stuck.
        plans: list[bool] = []
        dry_run = threading.Thread(target=lambda: plans.append(c.plan("spawn_vm", spawn("r1", 2, "b")).ok))
        dry_run.start()
        dry_run.join(WAIT_S)
        assert plans == [True], "the dry run waited for the stuck write"
        assert not store.gate.is_set() and store.sizes == []  # the write is still stuck
        # But nothing is announced, stored or on a device.
        assert not t.accepted
        assert t.id not in stored_ids(store.path)
        assert not on_device(sim, 1, "a")
        store.gate.set()
        assert c.wait(t, WAIT_S).state is State.COMMITTED
        assert on_device(sim, 1, "a")
        assert_invariants(c)
    finally:
        store.gate.set()
        c.stop()


def test_batches_queued_behind_a_slow_write_are_written_together(tmp_path: Path) -> None:
    c, store, _sim = open_controller(tmp_path)
    try:
        store.gate.clear()
        txns = [c.submit("spawn_vm", spawn("r1", 1, "first"))]
        assert store.waiting.wait(WAIT_S)
        for i, host in enumerate((2, 3), start=1):
            sealed = store.sealed
            txns.append(c.submit("spawn_vm", spawn("r1", host, f"vm{i}")))
            until(lambda s=sealed: store.sealed > s, f"the batch of vm{i} sealed")  # one batch each
        assert store.sizes == []  # both queued behind the stuck first write
        store.gate.set()
        for t in txns:
            assert c.wait(t, WAIT_S).state is State.COMMITTED
        assert max(store.sizes) >= 2, store.sizes  # the two later batches went out in one write
        assert_invariants(c)
    finally:
        store.gate.set()
        c.stop()
    restored = SQLiteStore(store.path).restore(STANDARD)
    assert restored is not None
    assert {t.id: t.state for t in restored.txns} == {t.id: State.COMMITTED for t in txns}
    assert all(vm("r1", h, n) in restored.model for h, n in ((1, "first"), (2, "vm1"), (3, "vm2")))


def test_a_failed_write_stops_the_controller_and_announces_nothing(tmp_path: Path) -> None:
    c, store, sim = open_controller(tmp_path)
    try:
        store.fail = StoreError(f"cannot write store {store.path}: disk I/O error", path=str(store.path))
        t = c.submit("spawn_vm", spawn("r1", 1, "a"))
        with pytest.raises(ControllerStopped, match="disk I/O error"):
            c.wait(t, WAIT_S)
        assert c.fatal is not None and str(store.path) in c.fatal.message
        assert not t.accepted and not t.settled
        assert not on_device(sim, 1, "a")
        with pytest.raises(ControllerStopped):
            c.submit("spawn_vm", spawn("r1", 2, "b"))
    finally:
        c.stop()
    # Nothing of it is in the store; the store opens again and takes work.
    assert t.id not in stored_ids(store.path)
    c2 = Controller.open(SQLiteStore(store.path), sim).start()
    try:
        t2 = c2.wait(c2.submit("spawn_vm", spawn("r1", 1, "a")), WAIT_S)
        assert t2.state is State.COMMITTED
    finally:
        c2.stop()


class CountedGateStore(SQLiteStore):
    """A SQLite store whose writes can be let through one at a time (``hold``, then ``let_one``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.cond = threading.Condition()
        self.allowed: int | None = None  # writes let through so far (None: every write goes)
        self.entered = 0  # write calls that reached the gate
        self.passed = 0

    def write(self, batches: Sequence[object]) -> None:
        with self.cond:
            self.entered += 1
            self.cond.notify_all()
            deadline = time.monotonic() + GATE_S
            while self.allowed is not None and self.passed >= self.allowed and time.monotonic() < deadline:
                self.cond.wait(1.0)
            self.passed += 1
        super().write(batches)

    def hold(self) -> None:
        with self.cond:
            self.allowed = self.passed

    def let_one(self) -> None:
        with self.cond:
            assert self.allowed is not None
            self.allowed += 1
            self.cond.notify_all()

    def open_gate(self) -> None:
        with self.cond:
            self.allowed = None
            self.cond.notify_all()


def test_a_transaction_is_not_settled_by_an_earlier_batch_that_holds_its_running_record(
    tmp_path: Path,
) -> None:
    """A running record of a transaction (its step progress) is in a batch still being written when the
    transaction becomes final in the next batch: when the first batch is durable, the transaction is not
    settled (waiters do not return, it stays in memory) until its final record is durable too."""
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    host = host_path("r1", 1)
    imported = sim.hang(host, action="import_volume", timeout=120)
    created = sim.hang(host, action="create_vm", timeout=120)
    store = CountedGateStore(tmp_path / "store.db")
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        t = c.submit("spawn_vm", spawn("r1", 1, "a"))
        assert imported.entered.wait(WAIT_S), "import_volume never reached the device"
        store.hold()  # the next write (the progress of the running transaction) waits at the gate
        sim.release(imported)
        until(lambda: store.entered > store.passed, "a write of the running transaction's progress")
        assert created.entered.wait(WAIT_S), "create_vm never reached the device"
        sim.release(created)
        until(lambda: t.state is State.COMMITTED, "the transaction's commit")
        c.call(lambda: None)  # the batch with its final record is sealed and queued behind the held write
        entered = store.entered
        store.let_one()  # the progress batch is written; the final record's write waits at the gate
        until(lambda: store.entered > entered, "the write of the final record")
        c.call(lambda: None)  # the logical thread has announced every durable batch
        stored = store.get_txn(t.id)
        assert stored is not None and stored.state is State.STARTED  # what a restart would find
        assert not t.settled, "reported final before its final record was durable"
        assert t.id in {x.id for x in c.live()}
        store.open_gate()
        assert c.wait(t, WAIT_S).settled
        stored = store.get_txn(t.id)
        assert stored is not None and stored.state is State.COMMITTED
    finally:
        store.open_gate()
        sim.release()
        c.stop()
