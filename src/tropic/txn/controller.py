"""The transaction manager: the whole lifecycle of a transaction lives here.

One *logical thread* owns the model, the lock table and the queues. It takes submitted transactions in
FIFO order, simulates each on a copy-on-write view, checks constraints, and takes hierarchical locks; a
conflicting transaction is deferred and retried (in FIFO order, ahead of newer work) when locks are
released. A transaction that gets its locks is applied to the logical model and handed to a *worker
pool*, which replays its action log on the devices; transactions on disjoint resources run concurrently.
On a failed step the worker undoes the completed steps in reverse and the logical thread reverts the
model. Every batch of events ends with one store commit (group commit) before anything is announced or
dispatched.

Cross-layer consistency meets the lifecycle here too: *fences* (resources left behind by a FAILED
transaction, or drifted from the model, see :mod:`tropic.reconcile`) refuse every transaction whose locks
overlap them, except repair procedures; a *logical change* that is not a procedure (a reload, device ->
model) is applied on the logical thread and persisted like a transaction's delta; and a *watchdog* rolls
back in-flight transactions whose worker stopped heart-beating.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tropic.drivers.base import Driver
from tropic.errors import (
    ConstraintViolation,
    ControllerStopped,
    FencedResource,
    StoreError,
    TransactionKilled,
    TropicError,
    UnknownProcedure,
    UnknownTransaction,
    UserError,
)
from tropic.model import (
    STANDARD,
    Delta,
    Model,
    Schema,
    Value,
    View,
    Violation,
    audit,
    differences,
    orphans,
    project,
    without,
)
from tropic.procedures import REGISTRY, Registry
from tropic.records.record import Transaction
from tropic.records.states import FINAL, State, move
from tropic.store.base import MemoryStore, Restored, Store
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.simulate import Simulation, simulate
from tropic.txn.worker import Executor, LocalExecutor
from tropic.txn.writer import StoreWriter

T = TypeVar("T")
MAX_BATCH = 32  # new transactions simulated per loop before their batch is sealed (announcements wait for it)
PROGRESS_SAVE_S = 0.05  # step outcomes of running transactions are saved at most this often
Listener = Callable[[Transaction], None]
KeyBinding = tuple[str, str]  # (idempotency key id, fingerprint of the request it was used for)

DRIFT = 0  # the fence owner of drifted resources (transaction ids start at 1)


@dataclass(slots=True)
class LogicalChange:
    """A model change that is not a procedure (e.g. a reload, device -> model): a view whose overlay was
    built directly, the paths no running transaction may hold a lock on, and the fences it lifts."""

    view: View
    guard: tuple[str, ...]
    unfence: tuple[str, ...] = ()


@dataclass(slots=True)
class ChangeResult:
    """What :meth:`Controller.apply_change` did: the delta applied, or why nothing was applied."""

    delta: Delta | None = None
    blocked_by: int | None = None  # a running transaction holds a lock on the guarded paths
    violations: list[Violation] = field(default_factory=list)
    unfenced: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Counters:
    submitted: int = 0
    committed: int = 0
    aborted: int = 0
    rolled_back: int = 0
    failed: int = 0
    killed: int = 0
    deferred: int = 0  # deferral events (a transaction deferred twice counts twice)

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Announcement:
    """What a batch makes known once it is durable: stored rollback starts (their workers wait), accepted
    submissions, state changes for listeners, and transactions to hand to workers."""

    stored: list[threading.Event]
    accepted: list[Transaction]
    notify: list[Transaction]
    dispatch: list[Transaction]

    def __bool__(self) -> bool:
        return bool(self.stored or self.accepted or self.notify or self.dispatch)


@dataclass(slots=True)
class _Call:
    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Controller:
    """Runs procedures as ACID transactions against a model and a driver."""

    def __init__(
        self,
        model: Model,
        driver: Driver,
        *,
        store: Store | None = None,
        registry: Registry = REGISTRY,
        workers: int = 8,
        executor: Executor | None = None,
        watchdog: float | None = 60.0,
    ) -> None:
        self.model = model
        self.driver = driver
        self.store = store or MemoryStore()
        self.registry = registry
        self.workers = workers
        self.locks = LockTable()
        self.fenced: dict[str, int] = {}
        self.counters = Counters()
        self._reserved = LockTable()  # lock requests of deferred transactions: FIFO fairness
        self._txns: dict[int, Transaction] = {}
        self._ids = itertools.count(1)
        self._submit_lock = threading.Lock()
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._pending: deque[Transaction] = deque()
        # Deferred transactions in FIFO order, and who each waits for: a deferred transaction is looked
        # at again only when the transaction blocking it releases or changes its locks or reservation
        # (not at every release: a long queue would make every release cost the whole queue).
        self._deferred: dict[int, Transaction] = {}
        self._waiters: dict[int, list[Transaction]] = {}  # blocker id -> transactions it blocks
        self._changed: set[int] = set()  # released or changed locks/reservations since the last retry
        self._retry_all = False  # look at every deferred transaction (a kill, a fence lifted, a restart)
        self._dispatch: list[Transaction] = []
        self._notify: list[Transaction] = []
        self._in_flight = 0
        self._running: dict[int, Transaction] = {}  # handed to workers, not yet final
        self._accepted: list[Transaction] = []
        self._stored: list[threading.Event] = []  # workers waiting for a rollback record to be durable
        self._writer: StoreWriter | None = None  # pipelined stores: commits run on this thread
        self._unannounced: deque[tuple[int, _Announcement]] = deque()  # (batch number, what it announces)
        self._thread: threading.Thread | None = None
        self.executor = executor or LocalExecutor(driver, workers)
        self.watchdog = watchdog  # seconds an in-flight transaction's worker may go without a heartbeat
        self._watched = 0.0
        self._progress_saved = 0.0
        self._stopping = False
        self._listeners: list[Listener] = []
        self._settled = threading.Condition()  # notified after each batch is durable
        self._fatal: TropicError | None = None

    @classmethod
    def open(
        cls,
        store: Store,
        driver: Driver,
        *,
        initial: Callable[[], Model] | None = None,
        schema: Schema = STANDARD,
        registry: Registry = REGISTRY,
        workers: int = 8,
        executor: Executor | None = None,
        watchdog: float | None = 60.0,
    ) -> Controller:
        """A controller on a durable store: restore the model and every transaction, or initialise an
        empty store with ``initial()``. Queued transactions resume in FIFO order once started; those that
        were executing are completed or rolled back from their durable step log."""
        restored = store.restore(schema)
        if restored is None:
            if initial is None:
                raise StoreError(f"store {store.uri} is empty and no initial model was given")
            model = initial()
            store.init_model(model)
            return cls(
                model,
                driver,
                store=store,
                registry=registry,
                workers=workers,
                executor=executor,
                watchdog=watchdog,
            )
        c = cls(
            restored.model,
            driver,
            store=store,
            registry=registry,
            workers=workers,
            executor=executor,
            watchdog=watchdog,
        )
        c._restore(restored)
        return c

    def _restore(self, restored: Restored) -> None:
        self.fenced = dict(restored.fenced)
        top = 0
        for t in restored.txns:
            self._txns[t.id] = t
            top = max(top, t.id)
            c = self.counters
            c.submitted += 1
            c.deferred += t.deferrals
            if t.state is State.COMMITTED:
                c.committed += 1
            elif t.state is State.FAILED:
                c.failed += 1
            elif t.state is State.ABORTED:
                c.aborted += 1
                if State.ROLLING_BACK.value in t.times:
                    c.rolled_back += 1
            if t.final and State.KILLED.value in t.times:
                c.killed += 1
            if t.state is State.SUBMITTED:
                self._pending.append(t)
            elif t.state is State.DEFERRED:
                self._deferred[t.id] = t
            elif not t.final:
                # It was executing: it still owns its locks (nothing else may touch its resources).
                self.locks.force(t.id, LockSet(t.reads, t.writes).requests())
                self._in_flight += 1
                self._running[t.id] = t
                self._dispatch.append(t)
        for t in self._deferred.values():
            self._reserved.force(t.id, LockSet(t.reads, t.writes).requests())
        self._ids = itertools.count(top + 1)

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Controller:
        if self._thread is not None:
            return self
        self._stopping = False
        events = self._events
        if self.store.pipelined:
            self._writer = StoreWriter(self.store, lambda: events.put(("durable",)))
        self.executor.start(finished=lambda t: events.put(("finished", t)), progress=self._rollback_starts)
        self._thread = threading.Thread(target=self._run, name="tropic-logical", daemon=True)
        self._thread.start()
        self._events.put(("resume",))  # retry restored deferred work, dispatch restored in-flight work
        return self

    def _rollback_starts(self, t: Transaction) -> None:
        """A worker is about to undo ``t``'s steps: store "rolling back" first, so that a recovery never
        redoes forward steps that were undone (it resumes the rollback instead)."""
        stored = threading.Event()
        self._events.put(("progress", t, stored))
        while not stored.wait(0.5):
            if self._fatal is not None or self._thread is None or not self._thread.is_alive():
                return  # the controller is gone: nothing will be stored, the recovery decides

    def stop(self) -> None:
        """Stop taking work, let in-flight transactions finish, and stop the threads. Queued
        transactions stay SUBMITTED/DEFERRED in the store and resume on the next start."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._events.put(("stop",))
        thread.join()
        self.executor.stop()
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self._thread = None

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def fatal(self) -> TropicError | None:
        """Why the logical thread stopped on its own (e.g. the store became unwritable), if it did."""
        return self._fatal

    def _check_alive(self) -> None:
        if self._fatal is not None:
            raise ControllerStopped(f"the controller stopped: {self._fatal.message}")
        if self._thread is not None and not self._thread.is_alive():
            raise ControllerStopped("the controller's logical thread is not running")

    # --- client API ----------------------------------------------------------------------------------
    def submit(
        self,
        procedure: str,
        args: Mapping[str, Value] | None = None,
        *,
        submitter: str = "local",
        durable: bool = False,
        timeout: float = 30.0,
        key: KeyBinding | None = None,
    ) -> Transaction:
        """Queue a transaction. Unknown procedures and ill-typed arguments are refused here, before any
        record exists (:class:`~tropic.errors.UserError`). With ``durable``, return only once the
        submission is in the store (it survives a crash from then on). ``key`` (an idempotency key id and
        the request's fingerprint) is stored with the transaction's first record by stores that keep keys
        (:meth:`~tropic.store.base.Store.bind_key`)."""
        return self.submit_many(
            [(procedure, args or {})],
            submitter=submitter,
            durable=durable,
            timeout=timeout,
            keys=None if key is None else [key],
        )[0]

    def submit_many(
        self,
        calls: Sequence[tuple[str, Mapping[str, Value]]],
        *,
        submitter: str = "local",
        durable: bool = False,
        timeout: float = 30.0,
        keys: Sequence[KeyBinding | None] | None = None,
    ) -> list[Transaction]:
        """Queue several transactions at once, in order, after checking every call: one bad call refuses
        them all (:class:`~tropic.errors.UserError` naming its index), and nothing is recorded. With
        ``durable``, return once every submission is in the store; they share group commits."""
        if keys is not None and len(keys) != len(calls):
            raise ValueError("keys must match calls one to one")
        checked: list[tuple[str, dict[str, Value]]] = []
        for i, (procedure, args) in enumerate(calls):
            try:
                proc = self.registry.get(procedure)
                checked.append((proc.name, proc.validate(args)))
            except UserError as e:
                if len(calls) == 1:
                    raise
                e.message = f"call {i}: {e.message}"
                e.args = (e.message,)
                raise
        self._check_alive()
        if not self.running:
            raise ControllerStopped("the controller is not running; start it before submitting")
        out: list[Transaction] = []
        with self._submit_lock:
            now = time.time()
            for i, (name, clean) in enumerate(checked):
                t = Transaction(next(self._ids), name, clean, submitter)
                t.times[State.SUBMITTED.value] = now
                key = keys[i] if keys is not None else None
                if key is not None:
                    self.store.bind_key(t.id, *key)  # before the record is queued (see Store.bind_key)
                self._txns[t.id] = t
                self._events.put(("submit", t))
                out.append(t)
        if durable and not self._wait_until(lambda: all(t.accepted for t in out), timeout):
            missing = [t.id for t in out if not t.accepted]
            raise StoreError(f"transaction(s) {missing} were not stored within {timeout} s")
        return out

    def plan(self, procedure: str, args: Mapping[str, Value] | None = None) -> Simulation:
        """Dry-run: simulate and check, showing the action log apply would run. Nothing is changed."""
        proc = self.registry.get(procedure)
        clean = proc.validate(args or {})
        return self.call(lambda: simulate(self.model, proc, clean))

    def kill(self, txn_id: int) -> Transaction:
        """Kill a non-final transaction; a running one is rolled back after its current step."""
        t = self.get(txn_id)
        if not t.final:
            t.kill_requested = True
            if self._thread is not None:
                self._events.put(("kill", t))
        return t

    def get(self, txn_id: int) -> Transaction:
        t = self._txns.get(txn_id)
        if t is None:
            raise UnknownTransaction(f"no transaction {txn_id}")
        return t

    def transactions(self) -> list[Transaction]:
        return list(self._txns.values())

    def wait(self, txn: Transaction | int, timeout: float | None = None) -> Transaction:
        t = txn if isinstance(txn, Transaction) else self.get(txn)
        if not self._wait_until(lambda: t.settled, timeout):
            raise TimeoutError(f"transaction {t.id} still {t.state.value} after {timeout} s")
        return t

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every known transaction is final; False on timeout."""
        txns = list(self._txns.values())
        return self._wait_until(lambda: all(t.settled for t in txns), timeout)

    def _wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait for ``predicate`` (re-checked after each durable batch); raise if the controller died."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._settled:
            while not predicate():
                self._check_alive()
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return predicate()
                self._settled.wait(left)
        return True

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` (on the logical thread, after the change is durable) at every state change."""
        self._listeners.append(listener)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the logical thread (the model's only owner) and return its result."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()
        c = _Call(fn)
        self._events.put(("call", c))
        while not c.done.wait(0.5):
            self._check_alive()
        if c.error is not None:
            raise c.error
        return c.result  # type: ignore[no-any-return]

    def check(self) -> dict[str, Value]:
        """Consistency of the logical model with the devices, ignoring fenced resources."""

        def run() -> dict[str, Value]:
            fenced = set(self.fenced)
            logical = without(project(self.model), fenced)
            physical = without(self.driver.inventory(), fenced)
            return {
                "consistent": logical == physical,
                "orphans": orphans(logical, physical),
                "differences": differences(logical, physical),
                "violations": [v.to_dict() for v in audit(self.model)],
                "fenced": sorted(fenced),
                "in_flight": self._in_flight,
                "locks_held": len(self.locks),
            }

        return self.call(run)

    def unfence(self, path: str) -> None:
        """Clear a fence once an operator has repaired the resource."""
        self.clear_fences([path])

    def fence(self, paths: Iterable[str], owner: int = DRIFT) -> list[str]:
        """Fence ``paths`` (durably) for ``owner``; a path already fenced keeps its owner. Returns the
        paths newly fenced."""

        def run() -> list[str]:
            new = [p for p in dict.fromkeys(paths) if p not in self.fenced]
            for p in new:
                self.fenced[p] = owner
                self.store.put_fence(p, owner)
            if new:
                self._persist(wait=True)
            return new

        return self.call(run)

    def clear_fences(self, paths: Iterable[str], owner: int | None = None) -> list[str]:
        """Lift the fences on ``paths`` (only those of ``owner``, when given); deferred transactions are
        retried. Returns the paths unfenced."""

        def run() -> list[str]:
            gone = [p for p in dict.fromkeys(paths) if p in self.fenced]
            gone = [p for p in gone if owner is None or self.fenced[p] == owner]
            for p in gone:
                del self.fenced[p]
                self.store.put_fence(p, None)
            if gone:
                self._persist(wait=True)
                self._retry_all = True
                self._retry_deferred()
            return gone

        return self.call(run)

    def busy_paths(self) -> list[str]:
        """The lock paths of transactions on the devices now (their resources are changing: whatever the
        devices show there is not drift). Call on the logical thread, e.g. inside :meth:`call`."""
        out: dict[str, None] = {}
        for t in self._running.values():
            out.update(dict.fromkeys(t.writes))
            out.update(dict.fromkeys(t.reads))
        return list(out)

    def apply_change(self, build: Callable[[Model], LogicalChange]) -> ChangeResult:
        """Apply a model change that is not a procedure, on the logical thread: ``build`` makes it from the
        current model; it is refused while a running transaction holds a lock on its guarded paths, and
        when it would break a constraint. Otherwise its delta is persisted like a transaction's, its
        fences are lifted, and deferred transactions are retried."""

        def run() -> ChangeResult:
            change = build(self.model)
            guard = LockSet(frozenset(), frozenset(change.guard))
            for t in self._running.values():
                if guard.overlaps(t.reads | t.writes):
                    return ChangeResult(blocked_by=t.id)
            violations = change.view.check_constraints()
            if violations:
                return ChangeResult(violations=violations)
            delta = self.model.apply(change.view)
            self.store.put_delta(delta)
            unfenced = [p for p in dict.fromkeys(change.unfence) if p in self.fenced]
            for p in unfenced:
                del self.fenced[p]
                self.store.put_fence(p, None)
            self._persist(wait=True)
            self._retry_all = True
            self._retry_deferred()
            return ChangeResult(delta=delta, unfenced=unfenced)

        return self.call(run)

    # --- the logical thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except TropicError as e:
            self._fatal = e
        except Exception as e:  # a bug must not leave callers waiting forever: record it, wake everyone
            self._fatal = TropicError(f"internal error on the logical thread: {type(e).__name__}: {e}")
        finally:
            with self._settled:
                self._settled.notify_all()

    def _loop(self) -> None:
        events = self._events
        stop = False
        while True:
            try:
                # While work is on the devices, wake up regularly to persist step progress.
                wait = 0.0 if self._pending else 0.05 if self._running else None
                batch = [events.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            released = False
            calls: list[_Call] = []
            self._announce_durable()  # results first: they should not wait for the new work below
            for ev in batch:
                kind = ev[0]
                if kind == "submit":
                    t = ev[1]
                    self.counters.submitted += 1
                    self.store.put_txn(t)
                    self._pending.append(t)
                    self._accepted.append(t)
                elif kind == "finished":
                    self._finish(ev[1])
                    released = True
                elif kind == "progress":  # a rollback starts: store it before the worker's first undo
                    self.store.put_txn(ev[1])
                    self._notify.append(ev[1])
                    self._stored.append(ev[2])
                elif kind in ("kill", "resume"):
                    released = True  # re-examine the queues; a running one is handled by its worker
                    self._retry_all = True
                elif kind == "call":
                    calls.append(ev[1])
                elif kind == "stop":
                    stop = True
            if released and self._notify:
                # Settle finished transactions before simulating new work: their latency should not
                # include the next batch's simulations (a pipelined store writes them meanwhile).
                self._persist()
            if not stop:
                self._schedule(released)
            if self._running and self.watchdog is not None:
                self._watch()
            self._save_progress()
            self._persist()
            for c in calls:
                try:
                    c.result = c.fn()
                except BaseException as e:  # handed back to the caller's thread
                    c.error = e
                c.done.set()
            if stop and self._in_flight == 0:
                self._persist(wait=True)
                return

    def _save_progress(self) -> None:
        """Save the step outcomes of running transactions, at most every :data:`PROGRESS_SAVE_S`. Not
        saving each step at once is safe: recovery redoes or undoes a step whose outcome it lacks (device
        actions are idempotent); it only makes a short transaction cost two records, not one per step."""
        if not self._running:
            return
        now = time.monotonic()
        if now - self._progress_saved < PROGRESS_SAVE_S:
            return
        self._progress_saved = now
        for t in self._running.values():
            n = len(t.steps)
            if n != t.saved_steps:
                t.saved_steps = n
                self.store.put_txn(t)
                self._notify.append(t)

    def _persist(self, *, wait: bool = False) -> None:
        """Make what this batch reported durable, then announce it. With a pipelined store the batch is
        handed to the writer thread and announced later, when the writer says it is written (``wait``:
        block until then)."""
        ann = _Announcement(self._stored, self._accepted, self._notify, self._dispatch)
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
        self._announce_durable()

    def _announce_durable(self) -> None:
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

    def _announce(self, ann: _Announcement) -> None:
        for ev in ann.stored:
            ev.set()
        for t in ann.accepted:
            t.accepted = True
        notify = ann.notify
        for t in notify:
            if t.final:
                t.settled = True
        if ann.accepted or notify:
            with self._settled:
                self._settled.notify_all()
        for t in notify:
            for listener in self._listeners:
                listener(t)
        submit = self.executor.submit
        for t in ann.dispatch:
            submit(t)

    def _schedule(self, released: bool) -> None:
        if self._changed or self._retry_all:
            self._retry_deferred()
        pending = self._pending
        budget = MAX_BATCH  # bound the time before this batch commits; the rest waits for the next loop
        while pending and budget:
            budget -= 1
            t = pending.popleft()
            if t.kill_requested:
                self._abort_killed(t)
                continue
            if not self._try_start(t):
                self._deferred[t.id] = t

    def _retry_deferred(self) -> None:
        """Retry, oldest first, the deferred transactions whose blocker released or changed its locks
        (every deferred one after a kill, a lifted fence or a restart). Starting or deferring one may
        unblock others: repeat until nothing changes."""
        rounds = 0
        while self._changed or self._retry_all:
            rounds += 1
            if self._retry_all or rounds > 100:  # (a cycle of changes is not expected; stay bounded)
                self._retry_all = False
                self._changed.clear()
                self._waiters.clear()
                candidates = list(self._deferred.values())
            else:
                changed, self._changed = self._changed, set()
                seen: dict[int, Transaction] = {}
                for b in changed:
                    for t in self._waiters.pop(b, ()):
                        seen[t.id] = t
                candidates = [seen[i] for i in sorted(seen)]
            for t in candidates:
                if self._deferred.get(t.id) is not t:
                    continue  # started or ended meanwhile (or listed under two blockers)
                if t.kill_requested:
                    del self._deferred[t.id]
                    self._reserved.release(t.id)
                    self._changed.add(t.id)
                    self._abort_killed(t)
                    continue
                wanted = LockSet(t.reads, t.writes).requests()
                blocker = self._blocker(t.id, wanted)
                if blocker is not None:
                    # Still blocked on the same locks: no need to simulate again.
                    self._waiters.setdefault(blocker, []).append(t)
                    continue
                del self._deferred[t.id]
                move(t, State.SUBMITTED)
                self.store.put_txn(t)
                if not self._try_start(t):
                    self._deferred[t.id] = t

    def _blocker(self, txn: int, wanted: dict[str, int]) -> int | None:
        blocker = self.locks.conflict(txn, wanted)
        if blocker is None:
            blocker = self._reserved.conflict(txn, wanted, before=txn)
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
        fenced = None if proc.repairs_fences else self._fenced_overlap(locks)
        if fenced is not None:
            owner = self.fenced[fenced]
            why = (
                "it drifted: the device no longer matches the model"
                if owner == DRIFT
                else f"left behind by failed transaction {owner}"
            )
            return self._abort(
                t, FencedResource(f"{fenced} is fenced ({why}); reload or repair it first", path=fenced)
            )
        wanted = locks.requests()
        blocker = self._blocker(t.id, wanted)
        if blocker is not None:
            self._defer(t, wanted, blocker)
            return False
        if self._reserved.release(t.id):
            self._changed.add(t.id)
        self.locks.force(t.id, wanted)
        t.delta = self.model.apply(sim.view)
        self.store.put_delta(t.delta)
        move(t, State.STARTED)
        self.store.put_txn(t)
        self._notify.append(t)
        if t.actions:
            self._in_flight += 1
            self._running[t.id] = t
            self._dispatch.append(t)
        else:
            move(t, State.COMMITTED)
            self._final(t)
        return True

    def _defer(self, t: Transaction, wanted: dict[str, int], blocker: int) -> None:
        move(t, State.DEFERRED)
        t.deferrals += 1
        t.blocked_by = blocker
        self.counters.deferred += 1
        if self._reserved.release(t.id) != wanted:
            self._changed.add(t.id)  # transactions waiting on its old reservation may go now
        self._reserved.force(t.id, wanted)
        self._waiters.setdefault(blocker, []).append(t)
        self.store.put_txn(t)
        self._notify.append(t)

    def _waits_for_older(self, t: Transaction, sim: Simulation) -> bool:
        """A simulation that failed (an error, a violated constraint) on resources an older *deferred*
        transaction will change did not see that change yet: e.g. a destroy of a VM whose spawn waits for
        its host. Defer it behind that transaction instead of aborting it, so conflicting transactions see
        each other's effects in submission order; it is simulated again once the older one is through."""
        if not self._deferred:
            return False
        reads = set(sim.view.reads)
        missing = sim.error.path if sim.error is not None else None
        if missing:
            reads.add(missing)  # the resource it did not find (a lookup is not a recorded read)
        locks = LockSet.from_sets(reads, sim.view.writes)
        wanted = locks.requests()
        blocker = self._reserved.conflict(t.id, wanted, before=t.id)
        if blocker is None:
            return False
        t.actions = []
        t.reads, t.writes = locks.reads, locks.writes
        self._defer(t, wanted, blocker)
        return True

    def _abort(self, t: Transaction, error: TropicError) -> bool:
        t.error = error.to_dict()
        if self._reserved.release(t.id):
            self._changed.add(t.id)
        move(t, State.ABORTED)
        self._final(t)
        return True

    def _abort_killed(self, t: Transaction) -> None:
        move(t, State.KILLED)
        t.error = TransactionKilled(f"transaction {t.id} was killed before it started").to_dict()
        move(t, State.ABORTED)
        self._final(t)

    def _fenced_overlap(self, locks: LockSet) -> str | None:
        if not self.fenced:
            return None
        for path in self.fenced:
            if locks.overlaps((path,)):
                return path
        return None

    def _watch(self) -> None:
        """The watchdog: hand a transaction whose worker stopped heart-beating to another worker, killed,
        to be rolled back (a worker waiting on a hung device still beats; the step deadline covers that)."""
        now = time.monotonic()
        if now - self._watched < 0.1:
            return
        self._watched = now
        limit = self.watchdog
        assert limit is not None
        for t in list(self._running.values()):
            beat = self.executor.heartbeat(t.id)
            if beat is None or now - beat <= limit:
                continue
            t.kill_requested = True
            if t.state is State.STARTED:
                move(t, State.KILLED)
                t.error = TransactionKilled(
                    f"transaction {t.id}: its worker showed no sign of life for {now - beat:.1f} s;"
                    " killed by the watchdog and rolled back"
                ).to_dict()
            self.store.put_txn(t)
            self._notify.append(t)
            self._dispatch.append(t)  # another worker rolls it back (replay resumes a KILLED one)

    def _finish(self, t: Transaction) -> None:
        """A worker is done with ``t``: make its outcome final on the logical side."""
        if self._running.pop(t.id, None) is None:
            return  # reported twice (a worker the watchdog replaced came back): the first report counts
        self._in_flight -= 1
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
        c = self.counters
        if t.state is State.COMMITTED:
            c.committed += 1
        elif t.state is State.FAILED:
            c.failed += 1
        else:
            c.aborted += 1
        if State.KILLED.value in t.times:
            c.killed += 1
        t.delta = None  # only a running transaction's rollback needs it: final records keep none
        self.store.put_txn(t)
        self._notify.append(t)

    # --- summaries -----------------------------------------------------------------------------------
    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in list(self._txns.values()):
            out[t.state.value] = out.get(t.state.value, 0) + 1
        return out

    def idle(self) -> bool:
        return all(t.state in FINAL for t in list(self._txns.values()))
