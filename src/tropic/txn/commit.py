"""Group commit: what the logical thread reports during a batch of events is made durable in one store
commit, and only then announced.

The logical thread records here every state change it makes (and the submissions it accepts, the
transactions it hands to workers, the rollback starts workers wait for). At the end of each batch
:meth:`GroupCommit.persist` commits them together. With a pipelined store the batch is sealed and handed to
the store writer thread (:mod:`tropic.txn.writer`) instead, and announced later, in batch order, once the
writer reports it written. Nothing is announced (callers woken, listeners called, transactions dispatched
to workers) before the batch that reported it is durable. Everything here runs on the logical thread,
except :meth:`GroupCommit.wake_waiters` and the ``settled`` condition clients wait on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from tropic.records.record import Transaction
from tropic.store.base import Store
from tropic.txn.worker import Executor
from tropic.txn.writer import StoreWriter

PROGRESS_SAVE_S = 0.05  # step outcomes of running transactions are saved at most this often
Listener = Callable[[Transaction], None]


@dataclass(slots=True)
class Announcement:
    """What a batch makes known once it is durable: stored rollback starts (their workers wait), accepted
    submissions, state changes for listeners, and transactions to hand to workers. ``notify`` pairs each
    recorded transaction with whether the record the batch stored was final: the transaction may have
    moved on (become final) in a later batch that is not durable yet when this one is announced."""

    stored: list[threading.Event]
    accepted: list[Transaction]
    notify: list[tuple[Transaction, bool]]
    dispatch: list[Transaction]

    def __bool__(self) -> bool:
        return bool(self.stored or self.accepted or self.notify or self.dispatch)


class GroupCommit:
    """Collects a batch's reports, commits them, and announces what is durable."""

    def __init__(self, store: Store, executor: Executor) -> None:
        self.store = store
        self.executor = executor
        self.listeners: list[Listener] = []  # called on the logical thread, after the change is durable
        self.accept_listeners: list[Callable[[Sequence[Transaction]], None]] = []  # same, new submissions
        self.retire: Listener | None = None  # called last for each durable final record (it leaves memory)
        self.settled = threading.Condition()  # notified after each batch is durable
        self._stored: list[threading.Event] = []  # workers waiting for a rollback record to be durable
        self._accepted: list[Transaction] = []
        self._notify: list[tuple[Transaction, bool]] = []  # (transaction, its recorded state is final)
        self._dispatch: list[Transaction] = []
        self._writer: StoreWriter | None = None  # pipelined stores: commits run on this thread
        self._unannounced: deque[tuple[int, Announcement]] = deque()  # (batch number, what it announces)
        self._progress_saved = 0.0

    # --- the writer's life: the logical thread's ---------------------------------------------------------
    def open(self, wake: Callable[[], None]) -> None:
        """Start the store writer for a pipelined store; ``wake`` is called after each write."""
        if self.store.pipelined:
            self._writer = StoreWriter(self.store, wake)

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    # --- what a batch reports ----------------------------------------------------------------------------
    def accept(self, t: Transaction) -> None:
        """Store a new submission; its submitter learns it is durable with the batch."""
        self.store.put_txn(t)
        self._accepted.append(t)

    def record(self, t: Transaction) -> None:
        """Store ``t``'s current state; listeners (and waiters on a final state) hear of it with the batch."""
        self.store.put_txn(t)
        self._notify.append((t, t.final))

    def dispatch(self, t: Transaction) -> None:
        """Hand ``t`` to the executor once the batch is durable (its action log with it)."""
        self._dispatch.append(t)

    def when_stored(self, stored: threading.Event) -> None:
        """Set ``stored`` once the batch is durable (a worker waits on it before its first undo)."""
        self._stored.append(stored)

    @property
    def reported(self) -> bool:
        """Whether this batch has state changes to announce."""
        return bool(self._notify)

    def save_progress(self, running: Collection[Transaction]) -> None:
        """Save the step outcomes of running transactions, at most every :data:`PROGRESS_SAVE_S`. Not
        saving each step at once is safe: recovery redoes or undoes a step whose outcome it lacks (device
        actions are idempotent); it only makes a short transaction cost two records, not one per step."""
        if not running:
            return
        now = time.monotonic()
        if now - self._progress_saved < PROGRESS_SAVE_S:
            return
        self._progress_saved = now
        for t in running:
            n = len(t.steps)
            if n != t.saved_steps:
                t.saved_steps = n
                self.record(t)

    # --- commit and announce -----------------------------------------------------------------------------
    def persist(self, *, wait: bool = False) -> None:
        """Make what this batch reported durable, then announce it. With a pipelined store the batch is
        handed to the writer thread and announced later, when the writer says it is written (``wait``:
        block until then)."""
        ann = Announcement(self._stored, self._accepted, self._notify, self._dispatch)
        self._stored, self._accepted, self._notify, self._dispatch = [], [], [], []
        w = self._writer
        if w is None:
            self.store.commit()
            self._announce(ann)
            return
        batch = self.store.seal()
        seq = w.put(batch) if batch is not None else w.queued
        if ann:
            self._unannounced.append((seq, ann))
        if wait:
            w.wait(seq)
        self.announce_durable()

    def announce_durable(self) -> None:
        """Announce, in order, every batch the writer has made durable; its failure stops the controller."""
        w = self._writer
        if w is None:
            return
        if w.error is not None:
            raise w.error
        durable = w.durable
        q = self._unannounced
        while q and q[0][0] <= durable:
            self._announce(q.popleft()[1])

    def _announce(self, ann: Announcement) -> None:
        for ev in ann.stored:
            ev.set()
        for t in ann.accepted:
            t.accepted = True
        # Only a durable final record settles a transaction. One that became final after this batch was
        # sealed has its final record in a later batch: it is settled (and reported to listeners in its
        # final state) when that batch is announced, never before (its waiters would otherwise return and
        # the record leave memory while the store still holds the earlier state).
        notify = [t for t, final in ann.notify if final or not t.final]
        for t, final in ann.notify:
            if final:
                t.settled = True
        if ann.accepted or notify:
            self.wake_waiters()
        if ann.accepted:
            for hear in self.accept_listeners:
                hear(ann.accepted)
        for t in notify:
            for listener in self.listeners:
                listener(t)
        if self.retire is not None:
            for t, final in ann.notify:
                if final:
                    self.retire(t)
        submit = self.executor.submit
        for t in ann.dispatch:
            submit(t)

    def wake_waiters(self) -> None:
        """Wake every thread waiting on :attr:`settled` (after a durable batch, or when the loop ends)."""
        with self.settled:
            self.settled.notify_all()
