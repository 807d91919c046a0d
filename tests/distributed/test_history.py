"""Bounded memory and history reads, against every store (the ``open_store`` fixture): final records
leave the controller's memory, and paging through the history finds every record, live or final, exactly
once. Objects are counted, never RSS, so that nothing here depends on the machine."""

from __future__ import annotations

import gc
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.helpers import small_dc, spawn, vm
from distributed.conftest import Opener
from tropic.drivers import Fault, SimDriver
from tropic.model import STANDARD, Model, project
from tropic.records.query import TxnQuery, touches
from tropic.store.base import Store
from tropic.txn import Controller, State, Transaction

ROUNDS = 40  # spawn, resize, destroy of 4 VMs per round: 480 transactions


def _sim(model: Model, **kw: object) -> SimDriver:
    d = SimDriver(**kw)  # type: ignore[arg-type]
    d.load(project(model))
    return d


def _held(c: Controller) -> int:
    """Records in the controller's memory, counted on the logical thread (after every announcement)."""
    return c.call(lambda: len(c._txns))


def _tracked_records() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Transaction)


def _round(c: Controller, r: int) -> None:
    names = [(1 + i % 3, f"m{r}-{i}") for i in range(4)]
    for host, name in names:
        c.submit("spawn_vm", spawn("r1", host, name, memory_mib=256))
    for host, name in names:
        c.submit("resize_vm", {"vm": vm("r1", host, name), "vcpus": 2, "memory_mib": 512})
    for host, name in names:
        c.submit("destroy_vm", {"vm": vm("r1", host, name)})


def test_final_records_leave_memory_and_stay_readable(open_store: Opener) -> None:
    """Hundreds of transactions later the controller holds no record, nor does anything else in the
    process; each one is still found by id, from the store."""
    model = small_dc()
    elsewhere = _tracked_records()  # records of earlier tests that are still referenced somewhere
    c = Controller.open(open_store(), _sim(model), initial=lambda: model).start()
    try:
        _round(c, 0)
        assert c.drain(60)
        for r in range(1, ROUNDS):
            _round(c, r)
            assert _held(c) <= 12  # at most the round in flight
            assert c.drain(60)
            assert _held(c) == 0
        assert c.live() == []
        # Of 480 records, only what the worker threads last ran may still be referenced from their
        # frames (bounded by the workers, not by the history).
        assert _tracked_records() - elsewhere <= 2 * c.workers
        last = 12 * ROUNDS
        for txn_id in (1, last // 2, last):
            t = c.get(txn_id)
            assert t.id == txn_id and t.state is State.COMMITTED and t.actions
        assert c.states() == {"COMMITTED": last}
    finally:
        c.stop()


def _ids(c: Controller, query: TxnQuery) -> list[int]:
    """Every id ``query`` matches, page by page (``query.limit`` a page), in the order seen."""
    out: list[int] = []
    before = query.before
    while True:
        page = c.history(
            TxnQuery(query.state, query.procedure, query.path, query.since, query.until, before, query.limit)
        )
        out.extend(t.id for t in page)
        if len(page) < query.limit:
            return out
        before = page[-1].id


def test_paging_while_transactions_run_finds_each_record_once(open_store: Opener) -> None:
    """Page through the history while transactions are queued, deferred, running and finishing: every
    transaction that existed when paging started is seen, each exactly once, live or final."""
    model = small_dc()
    sim = _sim(model, latency=0.002)
    c = Controller.open(open_store(), sim, initial=lambda: model).start()
    try:
        for r in range(8):
            _round(c, r)
        assert c.drain(60)
        stop = threading.Event()

        def load() -> None:
            r = 100
            while not stop.is_set():
                _round(c, r)
                r += 1
                c.drain(30)

        worker = threading.Thread(target=load)
        worker.start()
        try:
            for size in (1, 5, 17):
                top = max(t.id for t in c.history(TxnQuery(limit=1)))
                ids = _ids(c, TxnQuery(before=top + 1, limit=size))
                assert len(ids) == len(set(ids)), "a record was listed twice"
                assert set(ids) == set(range(1, top + 1)), "a record was missed"
                assert ids == sorted(ids, reverse=True)
        finally:
            stop.set()
            worker.join()
        assert c.drain(60)
    finally:
        c.stop()


def _dc_with_history(open_store: Opener) -> Controller:
    model = small_dc()
    c = Controller.open(open_store(), _sim(model), initial=lambda: model).start()
    for r in range(6):
        _round(c, r)
        c.submit("spawn_vm", spawn("r2", 1, f"big{r}", memory_mib=10**7))  # aborted: too big
    assert c.drain(60)
    return c


def test_filters_match_the_records_they_name(open_store: Opener) -> None:
    """Filtered pages are exactly the records a full scan says match (hypothesis picks filters and page
    sizes over one history)."""
    c = _dc_with_history(open_store)
    try:
        everything = c.transactions()
        assert [t.id for t in everything] == list(range(1, len(everything) + 1))
        times = sorted(t.times[State.SUBMITTED.value] for t in everything)
        paths = ["/compute/r1", "/compute/r1/host-01", "/compute/r2", vm("r1", 2, "m3-1"), "/storage"]

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            state=st.sampled_from([None, State.COMMITTED, State.ABORTED]),
            procedure=st.sampled_from([None, "spawn_vm", "destroy_vm", "resize_vm"]),
            path=st.sampled_from([None, *paths]),
            window=st.one_of(st.none(), st.tuples(st.sampled_from(times), st.sampled_from(times))),
            size=st.integers(1, 40),
        )
        def check(
            state: State | None,
            procedure: str | None,
            path: str | None,
            window: tuple[float, float] | None,
            size: int,
        ) -> None:
            since, until = window if window is not None else (None, None)
            query = TxnQuery(state, procedure, path, since, until, None, size)
            expected = [t.id for t in reversed(everything) if query.matches(t)]
            assert _ids(c, query) == expected

        check()
        aborted = _ids(c, TxnQuery(state=State.ABORTED, limit=50))
        assert len(aborted) == 6
        assert all(touches(c.get(i), "/compute/r2/host-01") for i in aborted)
    finally:
        c.stop()


def test_a_reopened_controller_counts_the_history_it_did_not_load(open_store: Opener) -> None:
    """A controller opens with the live records only: its counters still cover every past transaction
    (the store sums up the final ones), and new ids follow the largest stored one."""
    model = small_dc()
    sim = _sim(model, faults=[Fault(action="create_vm", probability=0.3)], seed=5)
    c = Controller.open(open_store(), sim, initial=lambda: model).start()
    try:
        for r in range(5):
            _round(c, r)
            c.submit("spawn_vm", spawn("r2", 1, f"big{r}", memory_mib=10**7))
        assert c.drain(60)
    finally:
        c.stop()
    before = c.counters.to_dict()
    assert before["rolled_back"] > 0 and before["aborted"] > before["rolled_back"]
    store = open_store()
    summed = store.restore_live(STANDARD)
    assert summed is not None and summed.history is not None and summed.txns == []
    full = Store.restore_live(store, STANDARD)  # the base class: a full read, summed in Python
    assert full is not None and summed.history == full.history
    again = Controller.open(open_store(), sim)
    assert again.counters.to_dict() == before
    assert again.live() == []
    again.start()
    try:
        t = again.wait(again.submit("spawn_vm", spawn("r1", 2, "after", memory_mib=256)), 10)
        assert t.id == before["submitted"] + 1
    finally:
        again.stop()


def test_nothing_kept_per_transaction_outlives_it(open_store: Opener) -> None:
    """Locks, reservations, blocker indexes, worker heartbeats and the stores' "action log written" sets
    are released when transactions end: after conflicting work (deferrals, aborts, rollbacks) they are
    all empty, and the group commit holds no listener or batch for them."""
    model = small_dc()
    sim = _sim(model, latency=0.001, faults=[Fault(action="create_vm", probability=0.3)], seed=9)
    c = Controller.open(open_store(), sim, initial=lambda: model).start()
    try:
        listeners = len(c._commit.listeners)
        for r in range(6):
            _round(c, r)  # same three hosts: spawns, resizes and destroys defer behind each other
            c.submit("spawn_vm", spawn("r2", 1, f"big{r}", memory_mib=10**7))
        assert c.drain(60)
        assert c.counters.deferred > 0 and c.counters.rolled_back > 0

        def held() -> dict[str, int]:
            s = c._scheduler
            return {
                "records": len(c._txns),
                "locks": len(c.locks),
                "lock index": len(c.locks._by_txn) + len(c.locks._held),
                "reservations": len(s.reserved),
                "deferred": len(s.deferred),
                "pending": len(s.pending),
                "running": len(s.running),
                "waiters": sum(len(w) for w in s._waiters.values()),
                "heartbeats": len(c.executor._beats) + len(c.executor._attempts),  # type: ignore[attr-defined]
                "logged": len(c.store._logged),  # type: ignore[attr-defined]
                "unannounced": len(c._commit._unannounced),
            }

        c.call(lambda: None)  # (after the last batch's announcement)
        assert c.call(held) == dict.fromkeys(held(), 0)
        assert len(c._commit.listeners) == listeners
    finally:
        c.stop()
