"""One behaviour suite for every store (SQLite and ZooKeeper): what the controller relies on when it
restores after a crash. Each test runs once per backend (the ``open_store`` fixture)."""

from __future__ import annotations

import contextlib
import time

import pytest

from core.helpers import small_dc, spawn, vm
from distributed.conftest import Opener
from tropic.drivers import Fault, SimDriver
from tropic.errors import ControllerStopped, StoreError
from tropic.model import STANDARD, Delta, Model, Node, Schema, project
from tropic.records.query import TxnQuery
from tropic.scenario import host_path
from tropic.store.base import Restored, Store
from tropic.txn import FINAL, Controller, State, Transaction, move


def _sim(model: Model, **kw: object) -> SimDriver:
    d = SimDriver(**kw)  # type: ignore[arg-type]
    d.load(project(model))
    return d


def test_an_empty_store_restores_nothing_and_keeps_its_first_model(open_store: Opener) -> None:
    store = open_store()
    assert store.restore(STANDARD) is None
    model = small_dc()
    store.init_model(model)
    again = open_store().restore(STANDARD)
    assert again is not None
    assert again.model.nodes == model.nodes and again.model.kids == model.kids
    assert again.txns == [] and again.fenced == {}


def test_in_flight_transaction_round_trips_with_action_log_and_delta(open_store: Opener) -> None:
    model = small_dc()
    sim = _sim(model)
    held = sim.hang(host_path("r1", 1), action="create_vm", timeout=120)
    c = Controller.open(open_store(), sim, initial=lambda: model).start()
    try:
        t = c.submit("spawn_vm", spawn("r1", 1, "a"), durable=True)
        # create_vm (step 4) is held on the device: the STARTED record and its delta were stored before
        # any step reached a device; the progress of steps 1-3 is stored soon after they end.
        assert held.entered.wait(60), "create_vm never reached the device"
        deadline = time.monotonic() + 60
        while True:
            restored = open_store(read_only=True).restore(STANDARD)
            assert restored is not None
            [r] = [x for x in restored.txns if x.id == t.id]
            if len(r.steps) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.state is State.STARTED
        assert [a.action for a in r.actions] == ["clone_image", "export_volume", "import_volume", "create_vm"]
        assert r.delta is not None and vm("r1", 1, "a") in r.delta.after
        assert vm("r1", 1, "a") in restored.model  # the model change is durable with the state
        assert r.reads == t.reads and r.writes == t.writes  # the locks it holds are restored
        assert len(r.steps) >= 3
        sim.release(held)
        assert c.drain(60)
    finally:
        c.stop()
    final = open_store().restore(STANDARD)
    assert final is not None
    [f] = [x for x in final.txns if x.id == t.id]
    assert f.state is State.COMMITTED and f.delta is None and len(f.actions) == 4
    assert [s.status for s in f.steps] == ["done"] * 4


def test_queue_order_deferrals_and_final_records_survive(open_store: Opener) -> None:
    model = small_dc()
    sim = _sim(model)
    held = sim.hang(host_path("r1", 1), action="create_vm", times=1, timeout=120)
    c = Controller.open(open_store(), sim, initial=lambda: model).start()
    try:
        ts = [c.submit("spawn_vm", spawn("r1", 1, f"q{i}", memory_mib=512)) for i in range(6)]
        bad = c.submit("spawn_vm", spawn("r1", 2, "huge", memory_mib=10**7))
        # The first spawn holds the host's locks while its create_vm is held: the others wait for them.
        assert held.entered.wait(60), "create_vm never reached the device"
        deadline = time.monotonic() + 60
        while not any(t.deferrals for t in ts) and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.release(held)
        assert c.drain(60)
    finally:
        c.stop()
    restored = open_store().restore(STANDARD)
    assert restored is not None
    by_id = {t.id: t for t in restored.txns}
    assert [t.id for t in restored.txns] == sorted(by_id)
    for t in ts:
        r = by_id[t.id]
        assert r.state is t.state is State.COMMITTED
        assert r.times.keys() == t.times.keys() and r.deferrals == t.deferrals
    assert sum(by_id[t.id].deferrals for t in ts) > 0  # same host: they waited for each other's locks
    r = by_id[bad.id]
    assert r.state is State.ABORTED and r.error is not None and r.error["code"] == "constraint_violation"
    assert r.violations and r.violations[0].path == bad.violations[0].path
    assert restored.model.nodes == c.model.nodes


def test_failed_transaction_fences_survive_restart(open_store: Opener) -> None:
    model = small_dc()
    sim = _sim(model, faults=[Fault(action="create_vm"), Fault(action="delete_volume", undo=True)])
    with Controller.open(open_store(), sim, initial=lambda: model) as c:
        t = c.wait(c.submit("spawn_vm", spawn("r1", 1, "bad")), 60)
        assert t.state is State.FAILED
    again = Controller.open(open_store(), sim)
    assert again.fenced == {"/storage/r1/san-1/vol-bad": t.id}
    assert again.get(t.id).left_behind == ["/storage/r1/san-1/vol-bad"]
    again.start()
    try:
        again.unfence("/storage/r1/san-1/vol-bad")
    finally:
        again.stop()
    assert open_store().restore(STANDARD).fenced == {}  # type: ignore[union-attr]


def test_reported_but_uncommitted_changes_are_not_durable(open_store: Opener) -> None:
    model = small_dc()
    store = open_store()
    store.init_model(model)
    host = "/compute/r1/host-01"
    old = model.nodes[host]
    delta = Delta(after={host: Node(old.kind, {**old.attrs, "memory_mib": 1234})}, before={host: old})
    model.apply_delta(delta)
    t = Transaction(1, "resize_host", {"host": host})
    move(t, State.STARTED)
    t.delta = delta
    store.put_delta(delta)
    store.put_txn(t)
    before = open_store(read_only=True).restore(STANDARD)
    assert before is not None and before.txns == []
    assert before.model.nodes[host].attrs["memory_mib"] != 1234
    store.commit()
    after = open_store().restore(STANDARD)
    assert after is not None and [x.id for x in after.txns] == [1]
    assert after.model.nodes[host].attrs["memory_mib"] == 1234
    assert after.txns[0].delta is not None and host in after.txns[0].delta.after


class _CrashingStore(Store):
    """Delegates to a real store and dies at its ``at``-th commit, like a controller killed mid-batch:
    what was reported since the previous commit never becomes durable."""

    def __init__(self, inner: Store, at: int) -> None:
        self.inner, self.at, self.uri = inner, at, inner.uri
        self.commits = 0

    def restore(self, schema: Schema) -> Restored | None:
        return self.inner.restore(schema)

    def init_model(self, model: Model) -> None:
        self.inner.init_model(model)

    def put_txn(self, txn: Transaction) -> None:
        self.inner.put_txn(txn)

    def get_txn(self, txn_id: int) -> Transaction | None:
        return self.inner.get_txn(txn_id)

    def find_txns(self, query: TxnQuery, extra: int = 0) -> list[Transaction]:
        return self.inner.find_txns(query, extra)

    def put_delta(self, delta: Delta, *, revert: bool = False) -> None:
        self.inner.put_delta(delta, revert=revert)

    def put_fence(self, path: str, txn: int | None) -> None:
        self.inner.put_fence(path, txn)

    def commit(self) -> None:
        self.commits += 1
        if self.commits >= self.at:
            raise StoreError("crashed (test)")
        self.inner.commit()


@pytest.mark.parametrize("crash_at", [3, 9, 20])
def test_a_crash_at_any_commit_resumes_every_transaction_once(open_store: Opener, crash_at: int) -> None:
    """Kill the controller at a commit (nothing after it is durable), restore with a new controller on the
    same durable devices and finish: every acknowledged transaction is there, each final once, and the
    model equals the devices."""
    model = small_dc(hosts=4)
    sim = _sim(model, latency=0.01, seed=3, faults=[Fault(probability=0.1)])
    store = _CrashingStore(open_store(), crash_at)
    first = Controller.open(store, sim, initial=lambda: model).start()
    submitted: list[Transaction] = []
    # Each submission waits until it is stored (a commit at least), the others keep running meanwhile: the
    # crash commit is reached within ``crash_at`` submissions, however the batches fall on this machine.
    with contextlib.suppress(ControllerStopped):
        for i in range(crash_at + 1):
            t = first.submit("spawn_vm", spawn("r1", 1 + i % 4, f"c{i}", memory_mib=256))
            submitted.append(t)
            deadline = time.monotonic() + 60
            while not t.accepted and first.fatal is None:
                assert time.monotonic() < deadline, f"transaction {t.id} was neither stored nor lost in 60 s"
                time.sleep(0.01)
    assert first.fatal is not None
    first.executor.stop()  # the crashed controller's device calls in flight end (as a crash would end them)
    acknowledged = {t.id for t in submitted if t.accepted}
    second = Controller.open(open_store(), sim).start()
    try:
        assert second.drain(60)
        ids = [t.id for t in second.transactions()]
        assert acknowledged <= set(ids) <= {t.id for t in submitted}
        assert len(ids) == len(set(ids))
        assert all(t.state in FINAL for t in second.transactions())
        report = second.check()
        assert report["consistent"], report["differences"]
        assert report["violations"] == [] and report["orphans"] == []
        assert sim.duplicates() == []
    finally:
        second.stop()
