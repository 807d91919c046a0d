"""The scheduler's admission decision by its plain definition: the reference the scheduler is checked
and measured against.

:class:`ReferenceScheduler` is the :class:`~tropic.txn.scheduler.Scheduler` with every incremental
structure taken out of the admission decision: a deferred transaction's lock requests are rebuilt from
its read and write sets at every look, the blocker is found by scanning each path's holders in arrival
order (:meth:`~tropic.txn.locks.LockTable.conflict_by_scan`), and a failed simulation's lock set is
always built and checked against every older reservation. It makes the same decisions, in the same
order, as the scheduler (``tests/core/test_scheduler_reference.py`` checks this on random workloads);
``benchmarks/scheduler_backlog.py`` runs both on one backlog. Not used by the controller.
"""

from __future__ import annotations

from collections.abc import Iterable

from tropic.model import ancestors
from tropic.records.record import Transaction
from tropic.txn.locks import LockSet
from tropic.txn.scheduler import Scheduler
from tropic.txn.simulate import Simulation


def plain_lock_set(reads: Iterable[str], writes: Iterable[str]) -> LockSet:
    """:meth:`LockSet.from_sets` by its definition: drop every path a lock on an ancestor covers."""
    w = set(writes)
    r = set(reads) - w
    w_min = {p for p in w if not any(a in w for a in ancestors(p))}
    r_min = {p for p in r if not any(a in w_min or a in r for a in ancestors(p))}
    return LockSet(frozenset(r_min), frozenset(w_min))


class ReferenceScheduler(Scheduler):
    """The scheduler with the admission decision computed the plain way at every look."""

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
        reads = set(sim.view.reads)
        missing = sim.error.path if sim.error is not None else None
        if missing:
            reads.add(missing)
        locks = plain_lock_set(reads, sim.view.writes)
        wanted = locks.requests()
        blocker = self.reserved.conflict_by_scan(t.id, wanted, before=t.id)
        if blocker is None:
            return False
        t.actions = []
        t.reads, t.writes = locks.reads, locks.writes
        self._defer(t, wanted, blocker)
        return True
