"""The transaction manager's client API: submit, wait for, kill and inspect transactions, run code on the
logical thread, and apply the changes of cross-layer consistency (fences, logical changes).

The lifecycle of a transaction is spread over a few modules of this package, each with one job:
:mod:`~tropic.txn.loop` (the *logical thread*, the only owner of the model, the lock table and the queues,
taking typed :mod:`~tropic.txn.events` in batches), :mod:`~tropic.txn.scheduler` (FIFO queue, simulation,
constraint and fence checks, hierarchical locks, deferral, and the end of a transaction's life),
:mod:`~tropic.txn.commit` (one store commit per batch before anything is announced or dispatched),
:mod:`~tropic.txn.watchdog` (rolls back transactions whose worker stopped heart-beating) and
:mod:`~tropic.txn.worker` (the workers replaying action logs on the devices). :class:`Controller` wires
them together and is the only entry point: client threads never touch the logical thread's state
directly, they put events or :meth:`Controller.call` a function on it.

*Fences* (resources left behind by a FAILED transaction, or drifted from the model, see
:mod:`tropic.reconcile`) refuse every transaction whose locks overlap them, except repair procedures; a
*logical change* that is not a procedure (a reload, device -> model) is applied on the logical thread and
persisted like a transaction's delta.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tropic.drivers.base import Driver
from tropic.errors import ControllerStopped, StoreError, TropicError, UnknownTransaction, UserError
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
from tropic.records.query import TxnQuery, merge
from tropic.records.record import Transaction
from tropic.records.states import FINAL, State
from tropic.store.base import MemoryStore, Restored, Store
from tropic.txn.commit import PROGRESS_SAVE_S, GroupCommit, Listener
from tropic.txn.counters import Counters
from tropic.txn.events import Submit
from tropic.txn.fences import DRIFT
from tropic.txn.locks import LockSet, LockTable
from tropic.txn.loop import LogicalThread
from tropic.txn.scheduler import MAX_BATCH, Scheduler
from tropic.txn.simulate import Simulation, simulate
from tropic.txn.watchdog import Watchdog
from tropic.txn.worker import Executor, LocalExecutor

__all__ = [
    "DRIFT",
    "MAX_BATCH",
    "PROGRESS_SAVE_S",
    "ChangeResult",
    "Controller",
    "Counters",
    "KeyBinding",
    "Listener",
    "LogicalChange",
]

T = TypeVar("T")
KeyBinding = tuple[str, str]  # (idempotency key id, fingerprint of the request it was used for)


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
        # Every start binds the devices to the model (connections, which backend drives what), before any
        # step runs: fresh or restored, embedded or a replica taking over.
        self.driver = driver.bind(model)
        self.store = store or MemoryStore()
        self.registry = registry
        self.workers = workers
        self.executor = executor or LocalExecutor(driver, workers)
        # The model, the lock table and the fence table are owned by the logical thread: the scheduler
        # shares them; clients read them only through call() (or as a racy snapshot, e.g. for metrics).
        self.locks = LockTable()
        self.fenced: dict[str, int] = {}
        self.counters = Counters()
        self._txns: dict[int, Transaction] = {}
        self._ids = itertools.count(1)
        self._submit_lock = threading.Lock()
        self._commit = GroupCommit(self.store, self.executor)
        self._commit.retire = self._retire
        self._scheduler = Scheduler(
            model, registry, self.store, self.locks, self.fenced, self.counters, self._commit
        )
        self._watchdog = Watchdog(watchdog, self.executor, self._commit)
        self._loop = LogicalThread(self._scheduler, self._commit, self._watchdog, self.executor)

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
        restored = store.restore_live(schema)
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
        self.fenced.update(restored.fenced)  # (the scheduler shares this table: fill it, do not replace it)
        top = 0
        for t in restored.txns:
            if not t.final:
                self._txns[t.id] = t
            top = max(top, t.id)
            if restored.history is None:
                self.counters.restored(t)
        h = restored.history
        if h is not None:  # the final records stayed in the store: count them from its summary
            top = max(top, h.last_id)
            c = self.counters
            c.submitted, c.committed, c.aborted, c.rolled_back = (
                h.submitted,
                h.committed,
                h.aborted,
                h.rolled_back,
            )
            c.failed, c.killed, c.deferred = h.failed, h.killed, h.deferred
        self._scheduler.restore([t for t in restored.txns if not t.final])
        self._ids = itertools.count(top + 1)

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Controller:
        self._loop.start()
        return self

    def stop(self) -> None:
        """Stop taking work, let in-flight transactions finish, and stop the threads. Queued
        transactions stay SUBMITTED/DEFERRED in the store and resume on the next start."""
        self._loop.stop()

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._loop.running

    @property
    def fatal(self) -> TropicError | None:
        """Why the logical thread stopped on its own (e.g. the store became unwritable), if it did."""
        return self._loop.fatal

    @property
    def watchdog(self) -> float | None:
        """Seconds an in-flight transaction's worker may go without a heartbeat (None: no watchdog)."""
        return self._watchdog.limit

    @watchdog.setter
    def watchdog(self, limit: float | None) -> None:
        self._watchdog.limit = limit

    def _check_alive(self) -> None:
        self._loop.check_alive()

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
        checked: bool = False,
    ) -> Transaction:
        """Queue a transaction. Unknown procedures and ill-typed arguments are refused here, before any
        record exists (:class:`~tropic.errors.UserError`). With ``durable``, return only once the
        submission is in the store (it survives a crash from then on). ``key`` (an idempotency key id and
        the request's fingerprint) is stored with the transaction's first record by stores that keep keys
        (:meth:`~tropic.store.base.Store.bind_key`). ``checked``: the caller has already validated the
        arguments with the procedure's own :meth:`~tropic.procedures.Procedure.validate` (the API does)."""
        return self.submit_many(
            [(procedure, args or {})],
            submitter=submitter,
            durable=durable,
            timeout=timeout,
            keys=None if key is None else [key],
            checked=checked,
        )[0]

    def submit_many(
        self,
        calls: Sequence[tuple[str, Mapping[str, Value]]],
        *,
        submitter: str = "local",
        durable: bool = False,
        timeout: float = 30.0,
        keys: Sequence[KeyBinding | None] | None = None,
        checked: bool = False,
    ) -> list[Transaction]:
        """Queue several transactions at once, in order, after checking every call: one bad call refuses
        them all (:class:`~tropic.errors.UserError` naming its index), and nothing is recorded. With
        ``durable``, return once every submission is in the store; they share group commits. With
        ``checked``, the calls are taken as already validated (registered names, clean arguments)."""
        if keys is not None and len(keys) != len(calls):
            raise ValueError("keys must match calls one to one")
        clean_calls: list[tuple[str, Mapping[str, Value]]] = []
        for i, (procedure, args) in enumerate(calls):
            if checked:
                clean_calls.append((procedure, args))
                continue
            try:
                proc = self.registry.get(procedure)
                clean_calls.append((proc.name, proc.validate(args)))
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
            for i, (name, clean) in enumerate(clean_calls):
                t = Transaction(next(self._ids), name, dict(clean), submitter)
                t.times[State.SUBMITTED.value] = now
                key = keys[i] if keys is not None else None
                if key is not None:
                    self.store.bind_key(t.id, *key)  # before the record is queued (see Store.bind_key)
                self._txns[t.id] = t
                self._loop.put(Submit(t))
                out.append(t)
        if durable and not self._wait_until(lambda: all(t.accepted for t in out), timeout):
            missing = [t.id for t in out if not t.accepted]
            raise StoreError(f"transaction(s) {missing} were not stored within {timeout} s")
        return out

    def check_accepting(self, txns: Sequence[Transaction]) -> None:
        """While ``txns`` wait to be stored: raise if they cannot be any more (the controller stopped)."""
        self._check_alive()
        if not self.running:
            raise ControllerStopped("the controller is not running")

    def plan(
        self, procedure: str, args: Mapping[str, Value] | None = None, *, checked: bool = False
    ) -> Simulation:
        """Dry-run: simulate and check, showing the action log apply would run. Nothing is changed.
        ``checked``: the arguments are already validated (as for :meth:`submit`)."""
        proc = self.registry.get(procedure)
        clean = dict(args or {}) if checked else proc.validate(args or {})
        return self.call(lambda: simulate(self.model, proc, clean))

    def kill(self, txn_id: int) -> Transaction:
        """Kill a non-final transaction; a running one is rolled back after its current step."""
        t = self.get(txn_id)
        if not t.final:
            t.kill_requested = True
            self._loop.kill(t)
        return t

    def _retire(self, t: Transaction) -> None:
        """A final record is durable: it leaves memory (the store answers for it from now on)."""
        if self._txns.get(t.id) is t:
            del self._txns[t.id]

    def get(self, txn_id: int) -> Transaction:
        """The live record of ``txn_id`` (the one the controller changes), or its stored copy once final."""
        t = self._txns.get(txn_id)
        if t is None:
            t = self.store.get_txn(txn_id)
            if t is None:
                raise UnknownTransaction(f"no transaction {txn_id}")
        return t

    def live(self) -> list[Transaction]:
        """The transactions not final yet (or whose final state is not durable yet), oldest first: the
        only records the controller keeps in memory."""
        return sorted(self._txns.values(), key=lambda t: t.id)

    def live_record(self, txn_id: int) -> Transaction | None:
        """The in-memory record of ``txn_id`` while it is live; None once it is final and durable."""
        return self._txns.get(txn_id)

    def history(self, query: TxnQuery) -> list[Transaction]:
        """One page of transactions matching ``query``, newest first, live or final: the live records
        from memory, the others from the store. Page on with ``before`` = the last id of the page."""
        live = [t for t in list(self._txns.values()) if query.before is None or t.id < query.before]
        return merge(live, self.store.find_txns(query, extra=len(live)), query)

    def transactions(self) -> list[Transaction]:
        """Every transaction, oldest first, read page by page (a full read of the history: for tests and
        small tools; services page with :meth:`history`)."""
        out: list[Transaction] = []
        before: int | None = None
        while True:
            page = self.history(TxnQuery(before=before, limit=1000))
            out.extend(page)
            if len(page) < 1000:
                break
            before = page[-1].id
        out.reverse()
        return out

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
        settled = self._commit.settled
        with settled:
            while not predicate():
                self._check_alive()
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    return predicate()
                settled.wait(left)
        return True

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` (on the logical thread, after the change is durable) at every state change."""
        self._commit.listeners.append(listener)

    def on_accepted(self, listener: Callable[[Sequence[Transaction]], None]) -> None:
        """Call ``listener`` with each durable batch's new submissions (on the logical thread, after
        their ``accepted`` is set; it must not block): a way to await acceptance without a thread."""
        self._commit.accept_listeners.append(listener)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the logical thread (the model's only owner) and return its result."""
        return self._loop.call(fn)  # type: ignore[no-any-return]

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
                "in_flight": len(self._scheduler.running),
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
                self._commit.persist(wait=True)
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
                self._commit.persist(wait=True)
                self._scheduler.retry_deferred(everything=True)
            return gone

        return self.call(run)

    def busy_paths(self) -> list[str]:
        """The lock paths of transactions on the devices now (their resources are changing: whatever the
        devices show there is not drift). Call on the logical thread, e.g. inside :meth:`call`."""
        out: dict[str, None] = {}
        for t in self._scheduler.running.values():
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
            for t in self._scheduler.running.values():
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
            self._commit.persist(wait=True)
            self._scheduler.retry_deferred(everything=True)
            return ChangeResult(delta=delta, unfenced=unfenced)

        return self.call(run)

    # --- summaries -----------------------------------------------------------------------------------
    def states(self) -> dict[str, int]:
        """How many transactions are in each state: the live ones counted in memory, the final ones by
        the counters (which cover the store's history since it was created)."""
        out: dict[str, int] = {}
        for t in list(self._txns.values()):
            if not t.final:
                out[t.state.value] = out.get(t.state.value, 0) + 1
        c = self.counters
        for state, n in (
            (State.COMMITTED, c.committed),
            (State.ABORTED, c.aborted),
            (State.FAILED, c.failed),
        ):
            if n:
                out[state.value] = n
        return out

    def idle(self) -> bool:
        return all(t.state in FINAL for t in list(self._txns.values()))
