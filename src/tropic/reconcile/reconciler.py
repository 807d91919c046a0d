"""The reconciler: finds drift between the logical model and the devices, fences it, and resolves it by
reload (device -> model) or repair (model -> device), on demand and in a periodic pass with per-kind
policies.

A scan reads one device at a time through :meth:`Driver.reload`, on a small pool of reader threads, each
read under a deadline (a device that does not answer is drift itself: ``reachable``). What a device shows
is compared with the model on the controller's logical thread, leaving out:

* resources locked by a transaction on the devices, before or after the read (their state is changing);
* devices whose part of the model changed while they were read (a transaction started or ended).

A difference seen for the first time is confirmed by a second look before it is recorded, so a
transaction that began and rolled back during the first read cannot pass for drift. Recording and fencing
happen in the same step on the logical thread as the comparison that justifies them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from tropic.drivers.base import covers
from tropic.errors import ConstraintViolation, TropicError
from tropic.model import Model
from tropic.reconcile.base import (
    Drift,
    Policies,
    Policy,
    Reconciliation,
    ReloadResult,
    RepairResult,
    ScopeBusy,
)
from tropic.reconcile.compare import (
    Entry,
    Finding,
    compare,
    devices_in,
    identity,
    kind_of,
    logical_entry,
    overlaps,
    physical_entry,
    same,
    unreachable,
)
from tropic.reconcile.plan import plan
from tropic.reconcile.reload import reload_view
from tropic.retry import RetryPolicy
from tropic.txn.controller import DRIFT, Controller, LogicalChange

log = logging.getLogger(__name__)

_UNREACHABLE = object()  # a device read that did not answer in time


@dataclass(slots=True)
class _Snap:
    kind: str
    logical: Entry | None
    identity: tuple[Any, ...]


@dataclass(slots=True)
class _Look:
    """One comparison of some devices with the model."""

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    unreachable: set[str] = field(default_factory=set)
    suspects: set[str] = field(default_factory=set)  # devices with differences not seen before
    lifted: list[str] = field(default_factory=list)  # drift fences lifted: their drift went away


class _Stale(Exception):
    """The model changed under a device between its read and the change built from it (or a
    transaction held the scope): read again."""


# A reload whose reads went stale reads the devices again after a short pause (growing, jittered, so it
# stops colliding with busy transactions); it gives up after the caller's number of attempts.
RELOAD_RETRY = RetryPolicy(attempts=5, backoff_s=0.005, max_backoff_s=0.1, deadline_s=None)


@dataclass(slots=True)
class _ReloadBuild:
    """Builds a reload's model change on the logical thread from device reads (see Reconciler._reload)."""

    owner: Reconciler
    snaps: dict[str, tuple[str, tuple[Any, ...]]]
    reads: dict[str, Any]
    wanted: dict[tuple[str, str], Drift]
    lift: str | None
    applied: list[Finding] = field(default_factory=list)
    skipped: list[tuple[Finding, str]] = field(default_factory=list)

    def build(self, model: Model) -> LogicalChange:
        findings: list[Finding] = []
        for d, (kind, ident) in self.snaps.items():
            got = self.reads[d]
            if got is _UNREACHABLE:
                findings.append(unreachable(kind, d))
                continue
            if not same(ident, identity(model, d)):
                raise _Stale(d)
            findings += compare(kind, d, logical_entry(model, d), got)
        # Only what a scan confirmed, still as it was then; anything else waits for the next scan.
        ready = [f for f in findings if f.key in self.wanted and _same(self.wanted[f.key], f)]
        view, self.applied, self.skipped = reload_view(model, ready)
        keys = {f.key for f in self.applied}
        with self.owner._lock:
            rest = [r for r in self.owner._records.values() if r.key not in keys]
        needed = [p for r in rest for p in (r.path, *r.fence)]
        fenced = self.owner.controller.fenced
        if self.lift is not None:
            candidates = [p for p in fenced if covers(self.lift, p)]
        else:
            candidates = [p for f in self.applied for p in f.fence if fenced.get(p) == DRIFT]
        unfence = tuple(p for p in candidates if not overlaps([p], needed))
        guard = tuple(sorted({*([self.lift] if self.lift is not None else []), *view.writes}))
        return LogicalChange(view, guard, unfence)


class _Readers:
    """A few daemon threads that read devices. A read that hangs holds its thread until it returns (a
    process exit never waits for it); while every thread hangs, further reads wait and time out."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._count = count
        self._started = False

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        if not self._started:
            self._started = True
            for i in range(self._count):
                threading.Thread(target=self._serve, name=f"tropic-reconcile-read-{i}", daemon=True).start()
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # handed to the scan, which reports the device unreachable
                fut.set_exception(e)

    def close(self) -> None:
        if self._started:
            for _ in range(self._count):
                self._jobs.put(None)
            self._started = False


class Reconciler(Reconciliation):
    """Drift detection and resolution for one controller (see the module docstring).

    ``interval``: seconds between periodic passes (:meth:`start`); ``device_timeout``: the deadline of one
    device read; ``policies``: what a periodic pass does with drift (report, reload or repair), per kind.
    """

    def __init__(
        self,
        controller: Controller,
        *,
        interval: float = 30.0,
        scopes: Sequence[str] = ("/",),
        policies: Policies | None = None,
        device_timeout: float = 10.0,
        readers: int = 8,
        repair_timeout: float = 120.0,
        max_auto_attempts: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.controller = controller
        self.driver = controller.driver
        self.interval = interval
        self.scopes = tuple(scopes)
        self.policies = policies or Policies()
        self.device_timeout = device_timeout
        self.repair_timeout = repair_timeout
        self.max_auto_attempts = max_auto_attempts
        self.clock = clock
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)  # resolved drift, oldest first
        # Device objects an operator chose to leave unmanaged (tropic.api.devices): never drift.
        self.ignored: Callable[[str], bool] = lambda path: False
        self.passes_started = 0
        self.passes_done = 0
        self.last_error: TropicError | None = None
        self._records: dict[tuple[str, str], Drift] = {}
        self._lock = threading.Lock()  # records and history
        self._op = threading.RLock()  # one scan, reload or repair at a time
        self._readers = _Readers(readers)
        self._outstanding: dict[str, Future[Any]] = {}  # device -> a read that has not answered yet
        self._pass = 0  # the periodic pass running now (0: none)
        self._how = "vanished"  # how drift that disappears now was resolved
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> Reconciler:
        """Run a periodic pass every ``interval`` seconds on a thread, until :meth:`stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="tropic-reconciler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._readers.close()

    def __enter__(self) -> Reconciler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trigger(self) -> None:
        """Start the next periodic pass now."""
        self._wake.set()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (re-checking after every pass) until ``predicate()``; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.reconcile()
                self.last_error = None
            except TropicError as e:
                self.last_error = e
                log.warning("reconcile pass failed: %s", e.message)
            except Exception:  # a bug must not end the periodic checks
                log.exception("reconcile pass failed")
            with self._cond:
                self.passes_done += 1
                self._cond.notify_all()
            self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
            self._wake.clear()

    # --- the client API -------------------------------------------------------------------------------
    def reconcile(self) -> list[Drift]:
        """One periodic pass: scan every scope, then resolve what the policies say. Returns the drift."""
        with self._op:
            self.passes_started += 1
            self._pass = self.passes_started
            try:
                for scope in self.scopes:
                    self._scan(scope)
                self._apply_policies()
            finally:
                self._pass = 0
        return self.records()

    def drift(self, path: str = "/", *, scan: bool = True) -> list[Drift]:
        devices = self.controller.call(lambda: devices_in(self.controller.model, path))
        if scan:
            with self._op:
                self._scan(path, devices)
        return self.records(path)

    def records(self, path: str = "/") -> list[Drift]:
        """The drift recorded at or below ``path`` (with its fence owner), without reading any device."""
        fenced = dict(self.controller.fenced)
        with self._lock:
            out = [r for r in self._records.values() if covers(path, r.path)]
        for r in out:
            r.fenced_by = _owner(fenced, r)
        return sorted(out, key=lambda r: (r.path, r.attribute))

    def fenced(self) -> dict[str, int]:
        return dict(self.controller.fenced)

    def reload(self, path: str) -> ReloadResult:
        with self._op:
            self._scan(path)
            return self._reload(self.records(path), lift=path)

    def repair(self, path: str, *, timeout: float = 120.0, submitter: str = "reconciler") -> RepairResult:
        with self._op:
            self._scan(path)
            return self._repair(self.records(path), lift=path, timeout=timeout, submitter=submitter)

    # --- scanning ---------------------------------------------------------------------------------------
    def _scan(self, scope: str, devices: list[str] | None = None) -> list[str]:
        """Look at the devices covering ``scope``; confirm new differences with a second look; record them
        (and fence them) or forget drift that went away. Returns the drift fences lifted."""
        if devices is None:
            devices = self.controller.call(lambda: devices_in(self.controller.model, scope))
        first = self._look(devices, None)
        lifted = first.lifted
        if first.suspects:
            seen = {f.key for d in first.suspects for f in first.findings.get(d, ())}
            lifted += self._look(sorted(first.suspects), seen).lifted
        return lifted

    def _look(self, devices: list[str], confirm: set[tuple[str, str]] | None) -> _Look:
        """Read ``devices`` and compare. On a first look (``confirm`` None) a device with a new difference
        is only marked suspect; on a second look new differences seen both times are recorded."""
        c = self.controller

        def snapshot() -> tuple[dict[str, _Snap], list[str]]:
            m = c.model
            snaps = {d: _Snap(kind_of(m, d), logical_entry(m, d), identity(m, d)) for d in devices}
            return snaps, c.busy_paths()

        snaps, busy_before = c.call(snapshot)
        reads = self._read({d: s.kind for d, s in snaps.items()})

        def judge() -> _Look:
            look = _Look()
            busy = [*busy_before, *c.busy_paths()]
            m = c.model
            for d, snap in snaps.items():
                got = reads[d]
                if got is _UNREACHABLE:
                    look.unreachable.add(d)
                    look.findings[d] = [unreachable(snap.kind, d)]
                elif not same(snap.identity, identity(m, d)):
                    continue  # the model changed under the read: look again next time
                else:
                    found = compare(snap.kind, d, snap.logical, got)
                    ours = [f for f in found if not self.ignored(f.path)]
                    look.findings[d] = [f for f in ours if not overlaps((f.path, *f.fence), busy)]
                if confirm is None:
                    with self._lock:
                        known = self._records
                        if any(
                            known.get(f.key) is None or not _same(known[f.key], f) for f in look.findings[d]
                        ):
                            look.suspects.add(d)
            self._record(look, busy, confirm)
            return look

        return c.call(judge)

    def _read(self, devices: dict[str, str]) -> dict[str, Any]:
        """Each device's inventory entry (None: the device does not have it), or _UNREACHABLE."""
        futures: dict[str, Future[Any]] = {}
        for d in devices:
            fut = self._outstanding.get(d)
            if fut is None or fut.done():
                fut = self._readers.submit(functools.partial(self.driver.reload, d))
                self._outstanding[d] = fut
            futures[d] = fut  # a device still silent since last time is not asked again
        wait(list(futures.values()), timeout=self.device_timeout)
        out: dict[str, Any] = {}
        for d, fut in futures.items():
            if not fut.done():
                out[d] = _UNREACHABLE
                continue
            self._outstanding.pop(d, None)
            error = fut.exception()
            if error is not None:
                log.info("reading %s failed: %s", d, error)
                out[d] = _UNREACHABLE
            else:
                out[d] = physical_entry(fut.result(), devices[d], d)
        return out

    def _record(self, look: _Look, busy: list[str], confirm: set[tuple[str, str]] | None) -> None:
        """Update the records from a look (on the logical thread): add and fence confirmed differences,
        forget drift its device no longer shows, lift drift fences nothing needs any more."""
        now = self.clock()
        decided = [d for d in look.findings if confirm is not None or d not in look.suspects]
        new: list[Drift] = []
        gone: list[Drift] = []
        with self._lock:
            seen: set[tuple[str, str]] = set()
            for d in decided:
                for f in look.findings[d]:
                    old = self._records.get(f.key)
                    if old is not None and _same(old, f):
                        old.last_seen = now
                        seen.add(f.key)
                    elif confirm is not None and f.key in confirm:
                        rec = Drift(
                            path=f.path,
                            attribute=f.attribute,
                            logical=f.logical,
                            physical=f.physical,
                            kind=f.kind,
                            device=f.device,
                            first_seen=now,
                            last_seen=now,
                            fence=f.fence,
                            detail=f.detail,
                            seen_in_pass=self._pass,
                        )
                        self._records[f.key] = rec
                        new.append(rec)
                        seen.add(f.key)
            observed = set(decided) - look.unreachable
            for key, rec in list(self._records.items()):
                if key in seen or rec.device not in observed:
                    continue
                if rec.attribute != "reachable" and overlaps((rec.path, *rec.fence), busy):
                    continue  # a transaction is changing it: not known either way
                del self._records[key]
                gone.append(rec)
                self.history.append({**rec.to_dict(), "resolved_at": now, "how": self._how})
            needed = [p for r in self._records.values() for p in (r.path, *r.fence)]
        c = self.controller
        if new:
            c.fence([p for r in new for p in r.fence], DRIFT)
            for r in new:
                log.info("drift: %s", r.describe())
        stale = [
            p
            for p, owner in c.fenced.items()
            if owner == DRIFT
            and any(covers(d, p) for d in observed)
            and not overlaps([p], needed)
            and not overlaps([p], busy)
        ]
        if stale:
            look.lifted += c.clear_fences(stale, owner=DRIFT)

    # --- reload: device -> model ----------------------------------------------------------------------------
    def _reload(self, drifts: list[Drift], *, lift: str | None, attempts: int = 5) -> ReloadResult:
        """Write ``drifts`` (recorded, so confirmed) into the model as the devices show them now; lift the
        fences at or below ``lift`` that no remaining drift needs (else only the reloaded ones' fences)."""
        devices = sorted({d.device for d in drifts})
        wanted = {d.key: d for d in drifts}
        c = self.controller

        def attempt() -> ReloadResult:
            snaps = c.call(lambda: {d: (kind_of(c.model, d), identity(c.model, d)) for d in devices})
            reads = self._read({d: kind for d, (kind, _) in snaps.items()})
            outcome = _ReloadBuild(self, snaps, reads, wanted, lift)
            done = c.apply_change(outcome.build)  # _Stale: the model moved under a read
            if done.blocked_by is not None:
                with contextlib.suppress(TimeoutError):
                    c.wait(done.blocked_by, self.repair_timeout)
                raise _Stale(f"transaction {done.blocked_by} held the scope")
            if done.violations:
                v = done.violations[0]
                raise ConstraintViolation(
                    f"reloading would break {v.constraint} on {v.path}: {v.message}; repair it instead",
                    path=v.path,
                    constraint=v.constraint,
                )
            return self._reloaded(outcome, lift, done.unfenced)

        try:
            return replace(RELOAD_RETRY, attempts=attempts).call(attempt, retry_on=(_Stale,))
        except _Stale:
            raise ScopeBusy(
                f"transactions kept changing {lift or devices}; reload again when they are done"
            ) from None

    def _reloaded(self, outcome: _ReloadBuild, lift: str | None, unfenced: list[str]) -> ReloadResult:
        result = ReloadResult(lift or "/", unfenced=unfenced)
        now = self.clock()
        with self._lock:
            for f in outcome.applied:
                rec = self._records.pop(f.key, None)
                if rec is not None:
                    result.changed.append(rec)
                    self.history.append({**rec.to_dict(), "resolved_at": now, "how": "reload"})
            for f, why in outcome.skipped:
                rec = self._records.get(f.key)
                if rec is not None:
                    rec.note = why
                    result.skipped.append(rec)
        return result

    # --- repair: model -> device -------------------------------------------------------------------------
    def _repair(
        self, drifts: list[Drift], *, lift: str | None, timeout: float, submitter: str
    ) -> RepairResult:
        """Run the compensating transactions for ``drifts`` stage by stage, look at their devices again,
        and lift the fences at or below ``lift`` that no remaining drift needs."""
        result = RepairResult(lift or "/")
        stages, cannot = plan(drifts)
        c = self.controller
        deadline = time.monotonic() + timeout
        for stage in stages:
            txns = [c.submit(proc, args, submitter=submitter) for proc, args in stage]
            for t in txns:
                with contextlib.suppress(TimeoutError):
                    c.wait(t, max(0.0, deadline - time.monotonic()))
                result.transactions.append(
                    {
                        "id": t.id,
                        "procedure": t.procedure,
                        "args": t.args,
                        "state": t.state.value,
                        "error": t.error,
                    }
                )
        devices = sorted({d.device for d in drifts})
        if devices:
            self._how = "repair"
            try:
                result.unfenced = self._scan("/", devices)
            finally:
                self._how = "vanished"
        with self._lock:
            left = {r.key for r in self._records.values()}
        keys = {d.key for d in drifts}
        result.resolved = [d for d in drifts if d.key not in left]
        result.remaining = (
            self.records(lift) if lift is not None else [r for r in self.records() if r.key in keys]
        )
        for d in cannot:
            for r in result.remaining:
                if r.key == d.key:
                    r.note = d.note
        if lift is not None:
            needed = [p for r in self.records() for p in (r.path, *r.fence)]
            candidates = [p for p in c.fenced if covers(lift, p) and not overlaps([p], needed)]
            result.unfenced += c.clear_fences(candidates) if candidates else []
        return result

    # --- policies -----------------------------------------------------------------------------------------
    def _apply_policies(self) -> None:
        fenced = dict(self.controller.fenced)
        reloads: list[Drift] = []
        repairs: list[Drift] = []
        with self._lock:
            for r in self._records.values():
                policy = self.policies.of(r.kind, r.attribute)
                owner = _owner(fenced, r)
                if (
                    policy is Policy.REPORT
                    or r.attribute == "reachable"
                    or r.auto_attempts >= self.max_auto_attempts
                ):
                    continue
                if owner is not None and owner != DRIFT:
                    continue  # left by a FAILED transaction: an operator reloads or repairs it
                r.auto_attempts += 1
                (reloads if policy is Policy.RELOAD else repairs).append(r)
        if reloads:
            try:
                self._reload(reloads, lift=None)
            except TropicError as e:
                for r in reloads:
                    r.note = e.message
        if repairs:
            self._repair(repairs, lift=None, timeout=self.repair_timeout, submitter="reconciler")


def _same(rec: Drift, f: Finding) -> bool:
    return bool(rec.logical == f.logical and rec.physical == f.physical)


def _owner(fenced: dict[str, int], rec: Drift) -> int | None:
    """The owner of the fence covering ``rec`` (its own paths first, then its ancestors), if any."""
    for p in (*rec.fence, rec.path):
        if p in fenced:
            return fenced[p]
    p = rec.path
    while p not in ("/", ""):
        p = p.rsplit("/", 1)[0] or "/"
        if p in fenced:
            return fenced[p]
    return None
