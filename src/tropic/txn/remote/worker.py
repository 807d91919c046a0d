"""A worker process of distributed mode: claims entries of the physical queue in ZooKeeper and replays
their transactions on its own driver.

A :class:`Worker` claims a queue entry with an *ephemeral* node (``/phys/claims/<seq>``), replays each
transaction with its own driver (:func:`tropic.txn.worker.replay`), records per-step outcomes as it goes
(``/phys/progress/<seq>``) and reports each finished transaction (``/phys/done/...``). Its ZooKeeper
writes are batched: one multi per flush carries the progress of every running transaction and every
completion since the previous flush.

A worker that dies loses its session, so its claims vanish; another worker claims the entry and resumes
each unfinished transaction from the recorded steps (:func:`replay` skips steps already done and resumes a
rollback; redoing a step whose outcome was not recorded is safe: device actions are idempotent). A
transaction whose completion was reported is marked done in the same multi, so it is never run twice. A
worker that lost its session stops before its next device action (:mod:`tropic.txn.remote.guard`) and
writes nothing more (every multi sets its session's registration node at the version it expects, which
also tells a resend of a multi that went through unanswered from a first send).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.recipe.watchers import ChildrenWatch

from tropic.drivers.base import Driver
from tropic.records.record import Transaction
from tropic.store.zk import MAX_ENTRY, Paths
from tropic.txn.remote.guard import Abandoned, GuardedDriver
from tropic.txn.remote.protocol import loads, progress_of, queued_transaction
from tropic.txn.worker import replay

log = logging.getLogger(__name__)

FLUSH_S = 0.02  # a worker writes completions at most this often (group commit)
PROGRESS_S = 0.1  # ... and the step progress of running transactions at most this often
DRAIN_S = 30.0  # on stop, how long a worker finishes its running transactions before leaving them
ZK_UNSURE = (ConnectionLoss, OperationTimeoutError)


def _rolled_back(e: Exception) -> bool:
    """kazoo marks the operations of a failed multi that did not fail themselves as RolledBackError."""
    return type(e).__name__ == "RolledBackError"


@dataclass(slots=True)
class _Batch:
    """A claimed queue entry: its transactions, which are done, what progress is stored."""

    seq: str
    generation: int
    txns: dict[int, Transaction] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved: dict[int, tuple[int, str]] = field(default_factory=dict)  # txn -> (steps, state) stored
    has_node: bool = False  # /phys/progress/<seq> exists


@dataclass(slots=True)
class WorkerStats:
    claimed_batches: int = 0
    resumed_batches: int = 0  # claimed with progress of an earlier worker
    finished: int = 0
    flushes: int = 0
    abandoned: int = 0

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Flush:
    """One flush, frozen at its first attempt so a resend after an unknown outcome is the same multi."""

    name: str | None  # the completion report node (None: progress only)
    reports: list[dict[str, Any]]
    finished: list[tuple[_Batch, int]]
    progress: dict[str, bytes]  # seq -> progress node data
    creates: set[str]  # progress nodes that do not exist yet
    complete: list[_Batch]  # batches whose every transaction is done: delete queue, progress, claim


class Worker:
    """A worker process's engine: claim queue entries, replay their transactions, report (see the
    module docstring). ``concurrency`` transactions run at once, on as many threads."""

    def __init__(
        self,
        client: KazooClient,
        driver: Driver,
        *,
        name: str | None = None,
        concurrency: int = 16,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.client = client
        self.driver = driver
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.flush_s = flush_s
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._batches: dict[str, _Batch] = {}
        self._finished: list[tuple[_Batch, Transaction]] = []
        self._urgent: list[threading.Event] = []  # rollbacks waiting for their state to be stored
        self._queue: list[str] = []
        self._claims: set[str] = set()
        self._unloaded: set[str] = set()  # claimed by this session, not loaded yet
        self._kills: set[int] = set()
        self._session: int | None = None
        self._generation = 0
        self._registration: str | None = None
        # The registration node's version counts this session's flushes that went through: each flush
        # sets it at the version it expects, so a resend of a flush that went through unanswered fails
        # on it (and is known done) instead of on what the first send already changed.
        self._reg_version = 0
        self._reg_info = b""
        self._pool: ThreadPoolExecutor | None = None
        self._flushes = 0
        self._pending_flush: _Flush | None = None
        self._watches: list[ChildrenWatch] = []
        self._last_progress = 0.0

    # --- lifecycle ---
    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set, then finish the running transactions' current steps and return
        (their claims end with the session; another worker resumes what is left)."""
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"tropic-{self.name}")
        self.client.add_listener(self._on_state)
        try:
            for path in (Paths.QUEUE, Paths.CLAIMS, Paths.PROGRESS, Paths.DONE, Paths.KILL, Paths.WORKERS):
                self.client.ensure_path(path)  # (a worker may start before any controller)
            self._register()
            self._watches = [
                ChildrenWatch(self.client, Paths.QUEUE, self._on_queue),
                ChildrenWatch(self.client, Paths.CLAIMS, self._on_claims),
                ChildrenWatch(self.client, Paths.KILL, self._on_kills),
            ]
            while not stop.is_set():
                self._wake.wait(self.flush_s)
                self._wake.clear()
                self._safely(self._round)
            # Drain: no new claims; finish and report what runs, then leave the rest to other workers.
            if self._running():
                log.warning("worker %s: finishing %d transactions first", self.name, self._running())
            deadline = time.monotonic() + DRAIN_S
            while self._running() and time.monotonic() < deadline:
                self._wake.wait(self.flush_s)
                self._wake.clear()
                self._safely(self._flush)
            self._safely(self._flush)
        finally:
            with self._state:
                self._generation += 1  # whatever still runs stops before its next device action
                self._state.notify_all()
            with self._lock:
                for ev in self._urgent:  # rollbacks waiting for a flush that will not come
                    ev.set()
                self._urgent.clear()
            self.client.remove_listener(self._on_state)
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _safely(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (*ZK_UNSURE, SessionExpiredError, ConnectionClosedError):
            time.sleep(0.1)
        except Exception:
            log.exception("worker %s: round failed; retrying", self.name)
            time.sleep(0.5)

    def _register(self) -> None:
        session = self.client.client_id
        self._session = session[0] if session else None
        self._registration = f"{Paths.WORKERS}/{self.name}-{self._session or 0:x}"
        info = orjson.dumps({"name": self.name, "pid": os.getpid(), "host": socket.gethostname()})
        self._reg_info = info
        with contextlib.suppress(NodeExistsError):
            self.client.create(self._registration, info, ephemeral=True, makepath=True)
        stat = self.client.exists(self._registration)
        self._reg_version = 0 if stat is None else stat.version

    def _on_state(self, state: str) -> None:
        with self._state:
            self._state.notify_all()
        self._wake.set()

    def _on_queue(self, names: list[str]) -> None:
        self._queue = sorted(names)
        self._wake.set()

    def _on_claims(self, names: list[str]) -> None:
        self._claims = set(names)
        self._wake.set()

    def _on_kills(self, names: list[str]) -> None:
        kills = {int(n) for n in names if n.isdigit()}
        self._kills = kills
        with self._lock:
            for b in self._batches.values():
                for txn, t in b.txns.items():
                    if txn in kills:
                        t.kill_requested = True

    # --- the session guard ---
    def _session_ok(self) -> bool:
        current = self.client.client_id
        return current is not None and current[0] == self._session

    def _guard_for(self, generation: int) -> Callable[[], None]:
        def guard() -> None:
            with self._state:
                while True:
                    if self._generation != generation:
                        raise Abandoned
                    if self.client.state == KazooState.CONNECTED:
                        if self._session_ok():
                            return
                        raise Abandoned
                    self._state.wait(0.1)

        return guard

    def _abandon(self) -> None:
        """The session ended: drop every claimed batch (the claims are gone with it) and start over."""
        with self._state:
            self._generation += 1
            self._state.notify_all()
        with self._lock:
            self.stats.abandoned += len(self._batches)
            self._batches.clear()
            self._unloaded.clear()
            self._finished.clear()
            for ev in self._urgent:
                ev.set()
            self._urgent.clear()
        self._pending_flush = None
        self._register()
        log.warning("worker %s: ZooKeeper session lost; claims dropped, starting over", self.name)

    # --- a round: notice session loss, flush, claim ---
    def _round(self) -> None:
        if self.client.state != KazooState.CONNECTED:
            return
        if not self._session_ok():
            self._abandon()
        self._flush()
        self._claim()

    def _running(self) -> int:
        with self._lock:
            return sum(len(b.txns) - len(b.done) for b in self._batches.values())

    def _claim(self) -> None:
        for seq in sorted(self._unloaded):  # claims made (or maybe made) whose entry is not loaded yet
            stat = self.client.exists(f"{Paths.CLAIMS}/{seq}")
            if stat is None or stat.ephemeralOwner != self._session:
                self._unloaded.discard(seq)  # not ours after all: claim it again (or not) below
                continue
            self._load(seq)
        mine = set(self._batches)
        for seq in self._queue:
            if self._running() >= 2 * self.concurrency:  # a little backlog keeps the threads busy
                return
            if seq in self._claims or seq in mine or seq in self._unloaded:
                continue
            self._unloaded.add(seq)  # from here on, a claim may exist whatever happens
            try:
                self.client.create(f"{Paths.CLAIMS}/{seq}", self.name.encode(), ephemeral=True)
            except NodeExistsError:
                self._unloaded.discard(seq)
                continue
            self._load(seq)

    def _load(self, seq: str) -> None:
        """Load a claimed entry and start its transactions; an entry gone meanwhile (finished and
        removed) releases the claim. Other failures leave it to the next round."""
        try:
            self._take(seq)
        except NoNodeError:
            with contextlib.suppress(NoNodeError):
                self.client.delete(f"{Paths.CLAIMS}/{seq}")
        self._unloaded.discard(seq)

    def _take(self, seq: str) -> None:
        queued = self.client.get_async(f"{Paths.QUEUE}/{seq}")
        logged = self.client.get_async(f"{Paths.WAL}/{seq}")
        stored = self.client.get_async(f"{Paths.PROGRESS}/{seq}")
        items = loads(queued.get(timeout=30)[0])
        # The action logs were written once, in the log entry of the commit that queued them.
        actions = {int(u["t"]["id"]): u["a"] for u in loads(logged.get(timeout=30)[0]) if "a" in u}
        for item in items:
            item["actions"] = actions[int(item["id"])]
        try:
            progress: dict[str, dict[str, Any]] = loads(stored.get(timeout=30)[0])
            has_node = True
        except NoNodeError:
            progress, has_node = {}, False
        batch = _Batch(seq, self._generation, progress=progress, has_node=has_node)
        todo: list[Transaction] = []
        for item in items:
            t = queued_transaction(item, progress.get(str(item["id"])))
            batch.txns[t.id] = t
            if progress.get(str(t.id), {}).get("done"):
                batch.done.add(t.id)
                continue
            if t.id in self._kills:
                t.kill_requested = True
            batch.saved[t.id] = (len(t.steps), t.state.value)
            todo.append(t)
        self.stats.claimed_batches += 1
        if progress:
            self.stats.resumed_batches += 1
        with self._lock:
            self._batches[seq] = batch
            if not todo:
                self._finished.append((batch, next(iter(batch.txns.values()))))  # complete it at once
        assert self._pool is not None
        guarded = GuardedDriver(self.driver, self._guard_for(batch.generation))
        for t in todo:
            self._pool.submit(self._execute, batch, t, guarded)

    def _execute(self, batch: _Batch, t: Transaction, driver: Driver) -> None:
        def on_rollback(t: Transaction) -> None:
            # Store "rolling back" before the first undo: a worker resuming it must not redo its steps.
            ev = threading.Event()
            with self._lock:
                self._urgent.append(ev)
            self._wake.set()
            ev.wait(30)

        try:
            replay(t, driver, on_rollback)
        except Abandoned:
            return
        except Exception:
            log.exception(
                "worker %s: transaction %d failed unexpectedly; left for resumption", self.name, t.id
            )
            return
        with self._lock:
            if batch.generation == self._generation and batch.seq in self._batches:
                self._finished.append((batch, t))
                self.stats.finished += 1
        self._wake.set()

    # --- flushing: one multi with progress and completions ---
    def _flush(self) -> None:
        if self._pending_flush is None:
            self._pending_flush = self._package()
        flush = self._pending_flush
        if flush is None:
            return
        ops = self.client.transaction()
        assert self._registration is not None
        ops.set_data(self._registration, self._reg_info, version=self._reg_version)
        if flush.name is not None:
            ops.create(f"{Paths.DONE}/{flush.name}", orjson.dumps(flush.reports))
        for seq, data in flush.progress.items():
            path = f"{Paths.PROGRESS}/{seq}"
            if seq in flush.creates:
                ops.create(path, data)
            else:
                ops.set_data(path, data)
        for b in flush.complete:
            ops.delete(f"{Paths.QUEUE}/{b.seq}")
            if b.has_node or b.seq in flush.creates:
                ops.delete(f"{Paths.PROGRESS}/{b.seq}")
            ops.delete(f"{Paths.CLAIMS}/{b.seq}")
        try:
            results = ops.commit_async().get(timeout=30)
        except ZK_UNSURE:
            return  # resent as is next round; if this send went through, the resend fails on the version
        failure = next((r for r in results if isinstance(r, Exception) and not _rolled_back(r)), None)
        if failure is None:
            self._reg_version += 1
            self._flushed(flush)
            return
        if isinstance(results[0], BadVersionError):
            # An earlier send of this flush went through unanswered (nothing else sets the node): its
            # report may be consumed and its batches' nodes deleted already, so it is done, not resent.
            stat = self.client.exists(self._registration)
            if stat is not None:
                self._reg_version = stat.version
                self._flushed(flush)
                return
        if isinstance(results[0], (NoNodeError, BadVersionError)):
            self._abandon()  # our registration is gone: so is our session
            return
        # Our view of a progress node was wrong (e.g. a resend after its creation): re-read and retry.
        log.debug("worker %s: flush failed (%s); retrying", self.name, failure)
        for seq in flush.progress:
            if self.client.exists(f"{Paths.PROGRESS}/{seq}") is not None:
                flush.creates.discard(seq)
            else:
                flush.creates.add(seq)
        for b in flush.complete:
            b.has_node = self.client.exists(f"{Paths.PROGRESS}/{b.seq}") is not None

    def _package(self) -> _Flush | None:
        with self._lock:
            finished, self._finished = self._finished, []
            urgent = bool(self._urgent)
            now = time.monotonic()
            due = urgent or finished or now - self._last_progress >= PROGRESS_S
            changed: dict[str, _Batch] = {}
            if due:
                self._last_progress = now
                for b in self._batches.values():
                    for txn, t in b.txns.items():
                        if txn in b.done:
                            continue
                        mark = (len(t.steps), t.state.value)
                        if b.saved.get(txn) != mark:
                            b.progress[str(txn)] = progress_of(t)
                            b.saved[txn] = mark
                            changed[b.seq] = b
        reports: list[dict[str, Any]] = []
        complete: list[_Batch] = []
        finished_pairs: list[tuple[_Batch, int]] = []
        for b, t in finished:
            if t.id not in b.done:
                reports.append({**progress_of(t), "id": t.id, "batch": b.seq})
                b.progress[str(t.id)] = {**progress_of(t), "done": True}
                finished_pairs.append((b, t.id))
                changed[b.seq] = b
        touched = {b.seq: b for b, _ in finished}
        for b in touched.values():
            if {*b.done, *(i for bb, i in finished_pairs if bb is b)} >= set(b.txns):
                complete.append(b)
                changed.pop(b.seq, None)
        if not reports and not changed and not complete:
            with self._lock:
                for ev in self._urgent:
                    ev.set()
                self._urgent.clear()
            return None
        name = None
        if reports:
            self._flushes += 1
            name = f"r-{self._session or 0:x}-{self._flushes:08d}"
        progress = {seq: orjson.dumps(b.progress) for seq, b in changed.items()}
        size = sum(len(v) for v in progress.values()) + len(orjson.dumps(reports))
        if size > MAX_ENTRY * 2:
            log.warning("worker %s: flush of %d bytes", self.name, size)
        creates = {seq for seq, b in changed.items() if not b.has_node}
        return _Flush(name, reports, finished_pairs, progress, creates, complete)

    def _flushed(self, flush: _Flush) -> None:
        self._pending_flush = None
        self.stats.flushes += 1
        with self._lock:
            for seq in flush.progress:
                b = self._batches.get(seq)
                if b is not None:
                    b.has_node = True
            for b, txn in flush.finished:
                b.done.add(txn)
            for b in flush.complete:
                self._batches.pop(b.seq, None)
            for ev in self._urgent:
                ev.set()
            self._urgent.clear()
