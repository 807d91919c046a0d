"""The replay engine: open-loop, time-compressed submission of a trace's spawns and destroys.

Each arrival is placed by the capacity index and submitted as a ``spawn_vm`` at its (compressed) instant;
each departure is submitted as a ``destroy_vm``. Submission never waits for a transaction: the engine
keeps the schedule whatever the controller does, so a controller that falls behind shows up as queueing
latency and queue depth, not as a slower replay. Finished transactions come back through a controller
listener and are recorded on the engine's thread.

Capacity is reserved when a spawn is submitted and freed when its destroy commits, so the index never
promises more room than the model has. A destroy is submitted only once its spawn has committed (a
departure that comes first waits for it): the controller simulates a new transaction before it looks at
locks, so a destroy submitted while its spawn is still deferred would not find its VM. A VM that fits
nowhere is rejected (counted, never submitted); a spawn that aborts gives its room back and its VM's
departure is skipped.
"""

from __future__ import annotations

import gc
import queue
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tropic.errors import ConfigError, ControllerStopped, InvalidArguments
from tropic.model import Value
from tropic.replay.datacenter import (
    DEFAULT_FILL,
    IMAGE,
    HostProfile,
    build_replay_datacenter,
    hosts_for,
    peak_demand,
    sim_devices,
)
from tropic.replay.metrics import DESTROY, SPAWN, Recorder, Series, memory_status
from tropic.replay.placement import CapacityIndex, Policy, memory_unit
from tropic.replay.schedule import Arrivals, Lifetimes, TimedEvent, timed_events
from tropic.store.registry import open_store
from tropic.trace import AzureTrace, EventKind
from tropic.txn import Controller, State, Transaction

SUBMITTER = "replay"
PROGRESS_EVERY_S = 0.25
HOST_SAMPLES = 500
YOUNG_GC_THRESHOLD = 50_000


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    speedup: float = 500.0
    hosts: int | None = None  # None: sized from the trace's peak demand at ``fill``
    host: HostProfile = field(default_factory=HostProfile)
    fill: float = DEFAULT_FILL
    store: str | None = None  # any store URI tropic.store.registry opens; None: SQLite in a temporary folder
    workers: int = 4
    policy: Policy = Policy.BEST_FIT
    prefer_idle: bool = True  # place on hosts with no transaction in flight when one fits
    arrivals: Arrivals = Arrivals.UNIFORM
    lifetimes: Lifetimes = Lifetimes.UNIFORM
    censored_departures: bool = False
    drain_timeout_s: float = 600.0
    freeze_gc: bool = True  # see _Run._tick
    check: bool = True

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise InvalidArguments(f"speedup must be positive, got {self.speedup}")
        if self.hosts is not None and self.hosts < 1:
            raise InvalidArguments(f"hosts must be at least 1, got {self.hosts}")
        if self.workers < 1:
            raise InvalidArguments(f"workers must be at least 1, got {self.workers}")


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    events_done: int
    events_total: int
    trace_s: float
    span_s: float
    submitted: int
    finished: int
    outstanding: int
    rejected: int
    lag_s: float


ProgressFn = Callable[[ReplayProgress], None]


@dataclass(frozen=True)
class ReplayResult:
    """Everything a replay measured: ``summary`` (plain data, the ``--json`` output) and the series the
    report plots."""

    summary: dict[str, Any]
    series: Series

    @property
    def p99_ms(self) -> float:
        return float(self.summary["latency_ms"]["p99"])

    @property
    def healthy(self) -> bool:
        """Every transaction final, and (when checked) the model equal to the devices."""
        return bool(self.summary["all_final"]) and self.summary.get("consistent") is not False

    def to_dict(self) -> dict[str, Any]:
        return self.summary


@dataclass(slots=True)
class _Vm:
    """A VM the replay placed: where, how big, and how far its life has got."""

    id: int
    host: int
    vcpus: int
    memory_mib: int
    spawned: bool = False  # its spawn committed
    due: bool = False  # its departure came before its spawn committed: destroy it once it does


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: int
    vm: _Vm


def plan_events(trace: AzureTrace, spec: ReplaySpec) -> list[TimedEvent]:
    """The replay's events, up to the end of the last time bin loaded (the trace end for a whole trace)."""
    horizon = trace.vms[-1].time_s + trace.bin_s if trace.vms else trace.start_s
    return list(
        timed_events(
            trace.vms,
            start_s=trace.start_s,
            end_s=trace.end_s,
            bin_s=trace.bin_s,
            arrivals=spec.arrivals,
            lifetimes=spec.lifetimes,
            lifetime_bins=trace.lifetime_bins,
            censored_departures=spec.censored_departures,
            horizon_s=horizon,
        )
    )


def run_replay(
    trace: AzureTrace,
    spec: ReplaySpec,
    *,
    progress: ProgressFn | None = None,
    events: list[TimedEvent] | None = None,
) -> ReplayResult:
    """Replay ``trace`` against a fresh controller and return what was measured."""
    spec.host.check_fits(trace.flavors.values())
    if events is None:
        events = plan_events(trace, spec)
    demand = peak_demand(events)
    hosts = spec.hosts if spec.hosts is not None else hosts_for(demand, spec.host, spec.fill)
    model, paths = build_replay_datacenter(hosts, spec.host)
    unit = memory_unit([spec.host.memory_mib, *(f.memory_mib for f in trace.flavors.values())])
    index = CapacityIndex([spec.host.capacity] * hosts, policy=spec.policy, unit_mib=unit)
    sim = sim_devices(model)
    tmp = tempfile.TemporaryDirectory(prefix="tropic-replay-") if spec.store is None else None
    uri = f"sqlite:///{Path(tmp.name) / 'replay.db'}" if tmp is not None else str(spec.store)
    try:
        store = open_store(uri)
        try:
            controller = Controller.open(store, sim, initial=lambda: model, workers=spec.workers)
            if controller.model is not model:
                raise ConfigError(
                    f"store {uri} already holds a model; a replay needs a fresh store", path=uri
                )
            run = _Run(controller, index, paths, spec, events, progress)
            summary = run.execute()
        finally:
            store.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    summary.update(
        {
            "trace": {
                "directory": str(trace.directory),
                "vms": len(trace),
                "time_bins": trace.time_bins,
                "span_s": trace.end_s - trace.start_s,
            },
            "demand": demand.to_dict(),
            "speedup": spec.speedup,
            "hosts": hosts,
            "host": {
                "cpus": spec.host.cpus,
                "memory_mib": spec.host.memory_mib,
                "cpu_overcommit": spec.host.cpu_overcommit,
            },
            "store": "sqlite (temporary file)" if tmp is not None else uri,
            "placement": spec.policy.value,
            "prefer_idle": spec.prefer_idle,
            "arrivals_in_bin": spec.arrivals.value,
            "lifetimes_in_bin": spec.lifetimes.value,
            "workers": spec.workers,
        }
    )
    windows = min(200, max(20, len(run.recorder) // 25))
    return ReplayResult(summary, run.recorder.series(windows))


class _Run:
    """One replay's mutable state, owned by the thread that calls :meth:`execute`."""

    def __init__(
        self,
        controller: Controller,
        index: CapacityIndex,
        paths: list[str],
        spec: ReplaySpec,
        events: list[TimedEvent],
        progress: ProgressFn | None,
    ) -> None:
        self.c = controller
        self.index = index
        self.paths = paths
        self.spec = spec
        self.events = events
        self.progress = progress
        self.recorder = Recorder(time.time(), spec.speedup)
        self.finals: queue.SimpleQueue[Transaction] = queue.SimpleQueue()
        self.pending: dict[int, _Pending] = {}
        self.placed: dict[int, _Vm] = {}  # VM id -> VM holding room (until its destroy commits)
        self.ready: list[_Vm] = []  # spawned VMs whose departure is overdue
        self.submitted = 0
        self.waited_destroys = 0
        self.skipped_destroys = 0
        self.lost_destroys = 0

    def _listener(self, t: Transaction) -> None:
        # On the logical thread: hand the record over, do nothing else there.
        if t.final and t.submitter == SUBMITTER:
            self.finals.put(t)

    def execute(self) -> dict[str, Any]:
        c = self.c
        c.subscribe(self._listener)
        thresholds = gc.get_threshold()
        if self.spec.freeze_gc:
            gc.collect()
            gc.freeze()
            # Fewer young collections: each transaction allocates hundreds of short-lived objects, and
            # the default (700) runs a collection, GIL held, every couple of transactions.
            gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
        c.start()
        try:
            return self._execute()
        finally:
            c.stop()
            if self.spec.freeze_gc:
                gc.set_threshold(*thresholds)
                gc.unfreeze()

    def _execute(self) -> dict[str, Any]:
        spec, rec, events = self.spec, self.recorder, self.events
        speedup = spec.speedup
        span = events[-1].at_s if events else 0.0
        sample_every = max(span / HOST_SAMPLES, 1e-9)
        next_sample = 0.0
        rec.hosts(0.0, 0, 0)
        rec.wall0 = time.time()
        start = time.perf_counter()
        next_tick = start
        for done, ev in enumerate(events):
            due = start + ev.at_s / speedup
            now = time.perf_counter()
            while now < due:
                self._drain()
                if now >= next_tick:
                    self._tick(done, ev.at_s, 0.0)
                    next_tick = now + PROGRESS_EVERY_S
                time.sleep(min(due - now, PROGRESS_EVERY_S))
                now = time.perf_counter()
            lag = now - due
            if lag > rec.max_lag_s:
                rec.max_lag_s = lag
            if now >= next_tick:
                self._tick(done, ev.at_s, lag)
                next_tick = now + PROGRESS_EVERY_S
            while ev.at_s >= next_sample:
                rec.hosts(next_sample, self.index.hosts_used, len(self.placed))
                next_sample += sample_every
            if ev.kind is EventKind.ARRIVAL:
                self._arrive(ev)
            else:
                self._depart(ev)
        rec.hosts(span, self.index.hosts_used, len(self.placed))
        self._wait_all(len(events), span)
        elapsed = time.perf_counter() - start
        check: dict[str, Value] = self.c.check() if spec.check else {}
        out: dict[str, Any] = {
            "events": len(events),
            "submitted": self.submitted,
            "offered_txn_s": round(self.submitted / (span / speedup), 1) if span > 0 else 0.0,
            "elapsed_s": round(elapsed, 3),
            "schedule_s": round(span / speedup, 3),
            "destroys_waiting_for_spawn": self.waited_destroys,
            "skipped_destroys": self.skipped_destroys,
            "vms_left_by_failed_destroys": self.lost_destroys,
            "all_final": not self.pending and self.c.idle(),
            "controller": self.c.counters.to_dict(),
            "live_vms_at_end": len(self.placed),
            "peak_rss_gib": memory_status()["peak_rss_gib"],
        }
        if check:
            out["consistent"] = bool(check["consistent"])
            out["orphans"] = check["orphans"]
            out["violations"] = len(check["violations"]) if isinstance(check["violations"], list) else 0
        out.update(rec.summary())
        return out

    # --- events ---------------------------------------------------------------------------------------
    def _arrive(self, ev: TimedEvent) -> None:
        vm = ev.vm
        host = self.index.place(vm.vcpus, vm.memory_mib)
        if host is None:
            self.recorder.reject("no_capacity")
            return
        if self.index.hosts_used > self.recorder.peak_hosts_used:
            self.recorder.peak_hosts_used = self.index.hosts_used
        placed = self.placed[vm.id] = _Vm(vm.id, host, vm.vcpus, vm.memory_mib)
        args: dict[str, Value] = {
            "host": self.paths[host],
            "name": f"vm{vm.id}",
            "image": IMAGE,
            "vcpus": vm.vcpus,
            "memory_mib": vm.memory_mib,
        }
        self._submit("spawn_vm", args, _Pending(SPAWN, placed))
        self._drain()

    def _depart(self, ev: TimedEvent) -> None:
        vm = self.placed.get(ev.vm.id)
        if vm is None:
            return  # rejected at arrival, or its spawn aborted: it never existed
        if vm.spawned:
            self._destroy(vm)
        else:
            vm.due = True
            self.waited_destroys += 1
        self._drain()

    def _destroy(self, vm: _Vm) -> None:
        self._submit("destroy_vm", {"vm": f"{self.paths[vm.host]}/vm{vm.id}"}, _Pending(DESTROY, vm))

    def _submit(self, procedure: str, args: dict[str, Value], info: _Pending) -> None:
        t = self.c.submit(procedure, args, submitter=SUBMITTER)
        if self.spec.prefer_idle:
            self.index.busy(info.vm.host)
        self.pending[t.id] = info
        self.submitted += 1

    def _drain(self) -> None:
        """Take in every finished transaction, submit the destroys that were waiting for them, and
        note the queue depth."""
        finals = self.finals
        while True:
            try:
                t = finals.get_nowait()
            except queue.Empty:
                if not self.ready:
                    break
                ready, self.ready = self.ready, []
                for vm in ready:
                    self._destroy(vm)
                continue
            self._finished(t)
        depth = len(self.pending)
        if depth > self.recorder.max_queue_depth:
            self.recorder.max_queue_depth = depth

    def _finished(self, t: Transaction) -> None:
        info = self.pending.pop(t.id, None)
        if info is None:
            return  # already seen (a final state can be announced twice)
        self.recorder.finished(info.kind, t)
        vm = info.vm
        if self.spec.prefer_idle:
            self.index.idle(vm.host)
        ok = t.state is State.COMMITTED
        if info.kind == SPAWN:
            if ok:
                vm.spawned = True
                if vm.due:
                    self.ready.append(vm)
                return
            del self.placed[vm.id]
            self.index.release(vm.host, vm.vcpus, vm.memory_mib)
            if vm.due:
                self.skipped_destroys += 1
        elif ok:
            del self.placed[vm.id]
            self.index.release(vm.host, vm.vcpus, vm.memory_mib)
        else:
            self.lost_destroys += 1  # the VM stays, with its room, to the end of the replay

    def _tick(self, done: int, trace_s: float, lag: float) -> None:
        if self.spec.freeze_gc:
            # What survived until now is mostly long-lived (transaction records, the model): keep it out
            # of the collector's full passes, which would otherwise grow with the replay and stall every
            # thread for up to seconds. Young collections still run; freeze() itself is O(1).
            gc.freeze()
        if self.progress is None:
            return
        self.progress(
            ReplayProgress(
                events_done=done,
                events_total=len(self.events),
                trace_s=trace_s,
                span_s=self.events[-1].at_s if self.events else 0.0,
                submitted=self.submitted,
                finished=len(self.recorder),
                outstanding=len(self.pending),
                rejected=sum(self.recorder.rejected.values()),
                lag_s=lag,
            )
        )

    def _wait_all(self, total: int, span: float) -> None:
        deadline = time.monotonic() + self.spec.drain_timeout_s
        next_tick = 0.0
        while self.pending and time.monotonic() < deadline:
            try:
                t = self.finals.get(timeout=PROGRESS_EVERY_S)
            except queue.Empty:
                t = None
            if t is not None:
                self._finished(t)
                self._drain()
            elif self.c.fatal is not None:
                raise ControllerStopped(f"the controller stopped during the replay: {self.c.fatal.message}")
            now = time.monotonic()
            if now >= next_tick:
                self._tick(total, span, 0.0)
                next_tick = now + PROGRESS_EVERY_S
        self._tick(total, span, 0.0)
