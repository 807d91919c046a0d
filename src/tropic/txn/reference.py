"""The scheduler's admission decision by its plain definition: the reference the scheduler is checked
and measured against.

:class:`ReferenceScheduler` is the :class:`~tropic.txn.scheduler.Scheduler` with every incremental
structure taken out of the admission decision: every look at a deferred transaction is made (none is
remembered), its lock requests are rebuilt from its read and write sets at each look, the blocker is
found by scanning each path's holders in arrival order
(:meth:`~tropic.txn.locks.LockTable.conflict_by_scan`), and a failed simulation's lock set is always
built and checked against every older reservation. It makes the same decisions, in the same order, as
the scheduler (``tests/core/test_scheduler_reference.py`` checks this on random workloads);
``benchmarks/scheduler_backlog.py`` runs both on one backlog. :class:`SchedulerRig` drives either by
hand. Not used by the controller.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from tropic.model import Model, Value, ancestors
from tropic.procedures import REGISTRY, Registry
from tropic.records.record import Transaction
from tropic.records.states import State, move
from tropic.store.base import MemoryStore
from tropic.txn.commit import GroupCommit
from tropic.txn.counters import Counters
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.scheduler import Scheduler, failed_reads
from tropic.txn.simulate import Simulation
from tropic.txn.worker import Executor, Report

Decision = tuple[int, str, int | None, int]  # (transaction, state it moved to, blocked by, deferrals)


def plain_lock_set(reads: Iterable[str], writes: Iterable[str]) -> LockSet:
    """:meth:`LockSet.from_sets` by its definition: drop every path a lock on an ancestor covers."""
    w = set(writes)
    r = set(reads) - w
    w_min = {p for p in w if not any(a in w for a in ancestors(p))}
    r_min = {p for p in r if not any(a in w_min or a in r for a in ancestors(p))}
    return LockSet(frozenset(r_min), frozenset(w_min))


class ReferenceScheduler(Scheduler):
    """The scheduler with the admission decision computed the plain way at every look."""

    def _look(self, t: Transaction, looked: dict[int, tuple[int, int, int | None]]) -> int | None:
        return self.blocker(t.id, self._wanted(t))

    def _wanted(self, t: Transaction) -> dict[str, int]:
        return LockSet(t.reads, t.writes).requests()

    def blocker(self, txn: int, wanted: dict[str, int]) -> int | None:
        blocker = self.locks.conflict_by_scan(txn, wanted)
        if blocker is None:
            blocker = self.reserved.conflict_by_scan(txn, wanted, before=txn)
        return blocker

    def _waits_for_older(self, t: Transaction, sim: Simulation) -> bool:
        if not self.deferred:
            return False
        locks = plain_lock_set(failed_reads(sim), sim.view.writes)
        wanted = locks.requests()
        blocker = self.reserved.conflict_by_scan(t.id, wanted, before=t.id)
        if blocker is None:
            return False
        t.actions = []
        t.reads, t.writes = locks.reads, locks.writes
        self._defer(t, wanted, blocker)
        return True


class _Handed(Executor):
    """The transactions handed to workers, kept in a list (the rig finishes them by hand)."""

    def __init__(self) -> None:
        self.handed: list[Transaction] = []

    def start(self, finished: Report, progress: Report) -> None:
        pass

    def submit(self, t: Transaction) -> None:
        self.handed.append(t)

    def stop(self) -> None:
        pass


class _Recorded(GroupCommit):
    """Group commit that also keeps every state change the scheduler reports, in order."""

    def __init__(self, store: MemoryStore, executor: Executor) -> None:
        super().__init__(store, executor)
        self.decisions: list[Decision] = []

    def record(self, t: Transaction) -> None:
        super().record(t)
        self.decisions.append((t.id, t.state.value, t.blocked_by, t.deferrals))


class SchedulerRig:
    """A scheduler driven by hand as the logical thread drives it (submit, schedule, finish, kill), on an
    in-memory store, with workers that do nothing until told: for comparing schedulers decision by decision
    and for measuring the logical thread's own cost under a backlog."""

    def __init__(self, model: Model, scheduler: type[Scheduler] = Scheduler, registry: Registry = REGISTRY):
        self.store = MemoryStore()
        self.executor = _Handed()
        self.commit = _Recorded(self.store, self.executor)
        self.scheduler = scheduler(model, registry, self.store, LockTable(), {}, Counters(), self.commit)
        self.txns: list[Transaction] = []
        self._ids = itertools.count(1)

    @property
    def decisions(self) -> list[Decision]:
        """Every state change, in the order the scheduler made it."""
        return self.commit.decisions

    @property
    def idle(self) -> bool:
        s = self.scheduler
        return not (s.pending or s.deferred or s.running)

    def submit(self, procedure: str, args: Mapping[str, Value]) -> Transaction:
        t = Transaction(next(self._ids), procedure, dict(args))
        self.txns.append(t)
        self.scheduler.submit(t)
        return t

    def schedule(self) -> None:
        """One pass of the logical thread: retry, start up to a batch of new ones, commit the batch."""
        self.scheduler.schedule()
        self.commit.persist()

    def running(self) -> list[Transaction]:
        """Transactions on the (idle) workers, oldest first."""
        return sorted(self.scheduler.running.values(), key=lambda t: t.id)

    def finish(self, t: Transaction, *, failed: bool = False, left_behind: Iterable[str] = ()) -> None:
        """``t``'s worker is done: committed, or (``failed``) rolled back, leaving ``left_behind``."""
        if failed:
            move(t, State.ROLLING_BACK)
            t.left_behind = list(left_behind)
        self.scheduler.finish(t)
        self.commit.persist()

    def kill(self, t: Transaction) -> None:
        """Kill a queued (not running) transaction, as a kill event does."""
        t.kill_requested = True
        self.scheduler.retry_all()
