"""The scheduler: a transaction's life on the logical thread, from the FIFO queue to its final state.

It takes submitted transactions in FIFO order, simulates each on a copy-on-write view, checks
constraints and fences, and takes hierarchical locks; a conflicting transaction is deferred, keeps a
reservation of the locks it wants (so newer conflicting work waits behind it), and is retried, in FIFO
order, when the transaction blocking it releases or changes its locks. A transaction that gets its locks
is applied to the logical model and handed to the executor; when its worker is done the scheduler makes
the outcome final (reverting the model and fencing what a failed rollback left behind). Everything here
runs on the logical thread; every state change is recorded with the batch's group commit
(:mod:`tropic.txn.commit`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from tropic.errors import ConstraintViolation, TransactionKilled, TropicError, UnknownProcedure
from tropic.model import Model
from tropic.procedures import Registry
from tropic.records.record import Transaction
from tropic.records.states import State, move
from tropic.store.base import Store
from tropic.txn.commit import GroupCommit
from tropic.txn.counters import Counters
from tropic.txn.fences import fenced_overlap, refusal
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.simulate import Simulation, simulate

MAX_BATCH = 32  # new transactions simulated per loop before their batch is sealed (announcements wait for it)
RETRY_ROUNDS = 100  # rounds of targeted retries before looking at every deferred transaction


def failed_reads(sim: Simulation) -> set[str]:
    """What a failed simulation read, with the resource it did not find (a lookup is not a recorded read).
    An error naming a reference that is not a path (``scope/name``: a VM by name) adds nothing: it has no
    place in the tree to lock."""
    reads = set(sim.view.reads)
    missing = sim.error.path if sim.error is not None else None
    if missing and missing.startswith("/"):
        reads.add(missing)
    return reads


class Scheduler:
    """The queues, reservations and running set of the logical thread, sharing the controller's model,
    lock table and fence table (all owned by the logical thread)."""

    def __init__(
        self,
        model: Model,
        registry: Registry,
        store: Store,
        locks: LockTable,
        fenced: dict[str, int],
        counters: Counters,
        commit: GroupCommit,
    ) -> None:
        self.model = model
        self.registry = registry
        self.store = store
        self.locks = locks
        self.fenced = fenced
        self.counters = counters
        self.commit = commit
        self.reserved = LockTable()  # lock requests of deferred transactions: FIFO fairness
        self.pending: deque[Transaction] = deque()
        self.running: dict[int, Transaction] = {}  # handed to workers, not yet final
        # Deferred transactions in FIFO order, and who each waits for: a deferred transaction is looked
        # at again only when the transaction blocking it releases or changes its locks or reservation
        # (not at every release: a long queue would make every release cost the whole queue).
        self.deferred: dict[int, Transaction] = {}
        self._waiters: dict[int, list[Transaction]] = {}  # blocker id -> transactions it blocks
        self._changed: set[int] = set()  # released or changed locks/reservations since the last retry
        self._retry_all = False  # look at every deferred transaction (a kill, a fence lifted, a restart)

    def restore(self, txns: Iterable[Transaction]) -> None:
        """Queue restored transactions (in id order): SUBMITTED and DEFERRED ones wait for their turn;
        ones that were executing re-take their locks and are handed to workers again, to be completed or
        rolled back from their durable step log."""
        for t in txns:
            if t.state is State.SUBMITTED:
                self.pending.append(t)
            elif t.state is State.DEFERRED:
                self.deferred[t.id] = t
            elif not t.final:
                # It was executing: it still owns its locks (nothing else may touch its resources).
                self.locks.force(t.id, LockSet(t.reads, t.writes).requests())
                self.running[t.id] = t
                self.commit.dispatch(t)
        for t in self.deferred.values():
            self.reserved.force(t.id, LockSet(t.reads, t.writes).requests())

    def submit(self, t: Transaction) -> None:
        """Take a new submission: store it and queue it behind the others."""
        self.counters.submitted += 1
        self.commit.accept(t)
        self.pending.append(t)

    def retry_all(self) -> None:
        """Look at every deferred transaction at the next :meth:`schedule` (a kill, a restart)."""
        self._retry_all = True

    def schedule(self) -> None:
        """Retry the deferred transactions that may go now, then start up to :data:`MAX_BATCH` new ones."""
        if self._changed or self._retry_all:
            self.retry_deferred()
        pending = self.pending
        budget = MAX_BATCH  # bound the time before this batch commits; the rest waits for the next loop
        while pending and budget:
            budget -= 1
            t = pending.popleft()
            if t.kill_requested:
                self._abort_killed(t)
                continue
            if not self._try_start(t):
                self.deferred[t.id] = t

    def retry_deferred(self, everything: bool = False) -> None:
        """Retry, oldest first, the deferred transactions whose blocker released or changed its locks
        (every deferred one with ``everything``: after a lifted fence or a logical change, or when asked by
        :meth:`retry_all`). Starting or deferring one may unblock others: repeat until nothing changes."""
        if everything:
            self._retry_all = True
        rounds = 0
        looked: dict[int, tuple[int, int, int | None]] = {}  # txn -> table versions, blocker found
        while self._changed or self._retry_all:
            rounds += 1
            if self._retry_all or rounds > RETRY_ROUNDS:  # (a cycle of changes is not expected; stay bounded)
                self._retry_all = False
                self._changed.clear()
                self._waiters.clear()
                candidates = list(self.deferred.values())
            else:
                changed, self._changed = self._changed, set()
                seen: dict[int, Transaction] = {}
                for b in changed:
                    for t in self._waiters.pop(b, ()):
                        seen[t.id] = t
                candidates = [seen[i] for i in sorted(seen)]
            for t in candidates:
                if self.deferred.get(t.id) is not t:
                    continue  # started or ended meanwhile (or listed under two blockers)
                if t.kill_requested:
                    del self.deferred[t.id]
                    self.reserved.release(t.id)
                    self._changed.add(t.id)
                    self._abort_killed(t)
                    continue
                blocker = self._look(t, looked)
                if blocker is not None:
                    # Still blocked on the same locks: no need to simulate again.
                    self._waiters.setdefault(blocker, []).append(t)
                    continue
                del self.deferred[t.id]
                move(t, State.SUBMITTED)
                self.store.put_txn(t)
                if not self._try_start(t):
                    self.deferred[t.id] = t

    def _look(self, t: Transaction, looked: dict[int, tuple[int, int, int | None]]) -> int | None:
        """:meth:`blocker` of a deferred transaction, remembered for this retry: a transaction filed again
        under a blocker that changed earlier in the same retry (a release wakes the queue behind it; the
        oldest starts, the others are filed under it, then woken again by its start) is not looked at
        again while neither table changed since (the answer would be the same)."""
        seen = looked.get(t.id)
        if seen is not None and seen[0] == self.locks.version and seen[1] == self.reserved.version:
            return seen[2]
        blocker = self.blocker(t.id, self._wanted(t))
        looked[t.id] = (self.locks.version, self.reserved.version, blocker)
        return blocker

    def _wanted(self, t: Transaction) -> dict[str, int]:
        """The locks a deferred transaction waits for: its reservation (kept, not rebuilt per look)."""
        wanted = self.reserved.requested(t.id)
        return LockSet(t.reads, t.writes).requests() if wanted is None else wanted

    def blocker(self, txn: int, wanted: dict[str, int]) -> int | None:
        """Who keeps ``txn`` from taking ``wanted``: a lock holder, or an older deferred transaction's
        reservation."""
        blocker = self.locks.conflict(txn, wanted)
        if blocker is None:
            blocker = self.reserved.conflict(txn, wanted, before=txn)
        return blocker

    def _try_start(self, t: Transaction) -> bool:
        """Simulate, check, lock, apply. False when deferred (the transaction stays queued)."""
        try:
            proc = self.registry.get(t.procedure)
        except UnknownProcedure as e:  # restored from a store written by a program that had it
            return self._abort(t, e)
        sim = simulate(self.model, proc, t.args)
        t.actions = sim.actions
        if not sim.ok and self._waits_for_older(t, sim):
            return False
        if sim.error is not None:
            return self._abort(t, sim.error)
        if sim.violations:
            t.violations = sim.violations
            v = sim.violations[0]
            return self._abort(
                t, ConstraintViolation(f"{v.constraint}: {v.message}", path=v.path, constraint=v.constraint)
            )
        locks = sim.locks()
        t.reads, t.writes = locks.reads, locks.writes
        fenced = None if proc.repairs_fences else fenced_overlap(self.fenced, locks)
        if fenced is not None:
            return self._abort(t, refusal(fenced, self.fenced[fenced]))
        wanted = locks.requests()
        blocker = self.blocker(t.id, wanted)
        if blocker is not None:
            self._defer(t, wanted, blocker)
            return False
        if self.reserved.release(t.id):
            self._changed.add(t.id)
        self.locks.force(t.id, wanted)
        t.delta = self.model.apply(sim.view)
        self.store.put_delta(t.delta)
        move(t, State.STARTED)
        self.commit.record(t)
        if t.actions:
            self.running[t.id] = t
            self.commit.dispatch(t)
        else:
            move(t, State.COMMITTED)
            self._final(t)
        return True

    def _defer(self, t: Transaction, wanted: dict[str, int], blocker: int) -> None:
        move(t, State.DEFERRED)
        t.deferrals += 1
        t.blocked_by = blocker
        self.counters.deferred += 1
        if self.reserved.release(t.id) != wanted:
            self._changed.add(t.id)  # transactions waiting on its old reservation may go now
        self.reserved.force(t.id, wanted)
        self._waiters.setdefault(blocker, []).append(t)
        self.commit.record(t)

    def _waits_for_older(self, t: Transaction, sim: Simulation) -> bool:
        """A simulation that failed (an error, a violated constraint) on resources an older *deferred*
        transaction will change did not see that change yet: e.g. a destroy of a VM whose spawn waits for
        its host. Defer it behind that transaction instead of aborting it, so conflicting transactions see
        each other's effects in submission order; it is simulated again once the older one is through."""
        if not self.deferred:
            return False
        oldest = self.reserved.oldest()
        if oldest is None or oldest >= t.id:
            return False  # no older reservation: nothing to wait for (and no lock set to build)
        return self._defer_behind_older(t, sim)

    def _defer_behind_older(self, t: Transaction, sim: Simulation) -> bool:
        locks = LockSet.from_sets(failed_reads(sim), sim.view.writes)
        wanted = locks.requests()
        blocker = self.reserved.conflict(t.id, wanted, before=t.id)
        if blocker is None:
            return False
        t.actions = []
        t.reads, t.writes = locks.reads, locks.writes
        self._defer(t, wanted, blocker)
        return True

    def _abort(self, t: Transaction, error: TropicError) -> bool:
        t.error = error.to_dict()
        if self.reserved.release(t.id):
            self._changed.add(t.id)
        move(t, State.ABORTED)
        self._final(t)
        return True

    def _abort_killed(self, t: Transaction) -> None:
        move(t, State.KILLED)
        t.error = TransactionKilled(f"transaction {t.id} was killed before it started").to_dict()
        move(t, State.ABORTED)
        self._final(t)

    def finish(self, t: Transaction) -> None:
        """A worker is done with ``t``: make its outcome final on the logical side."""
        if self.running.pop(t.id, None) is None:
            return  # reported twice (a worker the watchdog replaced came back): the first report counts
        if t.state is State.STARTED:
            move(t, State.COMMITTED)
        else:
            assert t.delta is not None, f"transaction {t.id} has no model delta to revert"
            self.model.revert(t.delta)
            self.store.put_delta(t.delta, revert=True)
            if t.left_behind:
                move(t, State.FAILED)
                for path in t.left_behind:
                    self.fenced[path] = t.id
                    self.store.put_fence(path, t.id)
            else:
                move(t, State.ABORTED)
                self.counters.rolled_back += 1
        self.locks.release(t.id)
        self._changed.add(t.id)
        self._final(t)

    def _final(self, t: Transaction) -> None:
        self.counters.final(t)
        t.delta = None  # only a running transaction's rollback needs it: final records keep none
        self.commit.record(t)
