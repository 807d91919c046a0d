"""``tropic ha bench``'s parts that need no cluster: its parameters, the unreplicated baseline (the same
load on the program alone), the watch of the replicas' ZooKeeper nodes, and the report: throughput and
latency against the baseline, the longest unavailability, the acknowledged writes read back, the whole
history through the linearizability checker per key, and each replacement's times. The run on a real
ensemble, controller and healer is :mod:`tropic.scenario.ha_bench`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tropic.errors import InvalidArguments, TropicError
from tropic.ha.contract import READ_PATHS, Client, ReadPath, ReplicaInfo
from tropic.ha.linearizability import KVModel, check
from tropic.ha.load import KillEvent, LoadGenerator, PipeClient, Record, history
from tropic.ha.metrics import (
    TOKEN_END,
    audit_writes,
    longest_gap,
    longest_gaps,
    max_unavailability,
    percentile,
)

__all__ = [
    "BenchFailed",
    "BenchSpec",
    "ReplicaWatch",
    "RunRecord",
    "baseline",
    "default_program",
    "replacements",
    "report",
    "summarise",
    "wait_until",
]

JOB = "kv"
Say = Callable[[str], None]


def default_program() -> list[str]:
    """``python3 examples/ha/kv.py`` of this checkout (the KV example is not installed with the package)."""
    path = Path(__file__).resolve().parents[3] / "examples" / "ha" / "kv.py"
    if not path.is_file():
        raise InvalidArguments(f"the KV example {path} is not there: give the program with --program")
    return [sys.executable, str(path)]


@dataclass(frozen=True, slots=True)
class BenchSpec:
    replicas: int = 3
    duration: float = 60.0
    kill_every: float = 10.0
    kill: Literal["process", "host"] = "process"
    clients: int = 4
    keys: int = 50
    write_ratio: float = 0.5
    baseline_duration: float | None = None  # default: min(duration, 10 s)
    program: tuple[str, ...] = ()  # default: the KV example
    failure_domain: str = "host"
    client_timeout: float = 10.0  # one call's deadline (then it counts as failed, outcome unknown)
    # The first per-replica attempt's timeout (doubles per round). A killed replica is noticed at once (its
    # connections are refused or reset), so this only bounds a slow one: under load, 0.25 s made clients
    # abandon slow but healthy replicas and retry elsewhere (~80 failovers a minute), lengthening stalls.
    attempt_timeout: float = 1.0
    check_timeout: float = 300.0  # the linearizability checker's budget
    heal_timeout: float = 60.0  # after the load: how long to wait for every replica to serve again
    seed: int = 0
    zk_uri: str = ""  # an ensemble to use (a zk:// URI with a chroot of the bench's own); default: start one
    read_path: ReadPath = "log"  # how the replicas answer the linearizable gets (--read-path)

    def validate(self) -> None:
        if self.replicas < 1:
            raise InvalidArguments("--replicas must be at least 1")
        if self.duration <= 0 or self.kill_every <= 0:
            raise InvalidArguments("--duration and --kill-every must be positive")
        if self.kill not in ("process", "host"):
            raise InvalidArguments(f"--kill must be host or process, got {self.kill!r}")
        if self.clients < 1 or self.keys < 1:
            raise InvalidArguments("--clients and --keys must be at least 1")
        if not 0 <= self.write_ratio <= 1:
            raise InvalidArguments("--write-ratio must be between 0 and 1")
        if self.attempt_timeout <= 0 or self.client_timeout <= 0:
            raise InvalidArguments("--attempt-timeout must be positive")
        if self.read_path not in READ_PATHS:
            raise InvalidArguments(f"--read-path must be log or sync, got {self.read_path!r}")
        if self.failure_domain not in ("host", "rack", "region"):
            raise InvalidArguments(f"--domain must be host, rack or region, got {self.failure_domain!r}")

    @property
    def kills(self) -> int:
        return max(0, math.ceil(self.duration / self.kill_every) - 1)


# --- figures ----------------------------------------------------------------------------------------
def summarise(records: Sequence[Record], start: float, end: float) -> dict[str, Any]:
    """Throughput (successful requests per second), latency percentiles and counts of one run."""
    ok = [r for r in records if r.ok and r.ret is not None]
    latencies = [1000.0 * (r.ret - r.call) for r in ok if r.ret is not None]
    span = max(end - start, 1e-9)
    return {
        "throughput": round(len(ok) / span, 1),
        "p50_ms": round(percentile(latencies, 50), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 3) if latencies else None,
        "requests": len(records),
        "failed": len(records) - len(ok),
        "duration_s": round(span, 3),
    }


def _closed_loop(clients: Sequence[tuple[str, Client]], spec: BenchSpec, seconds: float) -> LoadGenerator:
    load = LoadGenerator(clients, keys=spec.keys, write_ratio=spec.write_ratio, seed=spec.seed)
    load.start()
    time.sleep(seconds)
    load.stop(timeout=spec.client_timeout + 30)
    return load


def baseline(spec: BenchSpec, program: Sequence[str], say: Say) -> dict[str, Any]:
    """The same load on the program alone (one process behind a pipe, requests one at a time)."""
    seconds = spec.baseline_duration if spec.baseline_duration is not None else min(spec.duration, 10.0)
    say(f"baseline: {spec.clients} clients on the program alone for {seconds:.0f} s")
    pipe = PipeClient(program)
    try:
        load = _closed_loop([(f"b{i}", pipe) for i in range(spec.clients)], spec, seconds)
    finally:
        pipe.close()
    return summarise(load.records, 0.0, seconds)


# --- the replicated run -----------------------------------------------------------------------------
class ReplicaWatch:
    """Polls the job's replica nodes in ZooKeeper: when each replica first registered and first served."""

    def __init__(self, zk: Any, clock: Callable[[], float], every: float = 0.1) -> None:
        self.zk = zk  # a tropic.jobs.observe.JobZooKeeper
        self.clock = clock
        self.every = every
        self.registered: dict[str, float] = {}
        self.serving: dict[str, float] = {}
        self.info: dict[str, ReplicaInfo] = {}
        self.live: dict[str, ReplicaInfo] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-bench-watch", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def poll(self) -> None:
        now = self.clock()
        live = self.zk.replicas(JOB)
        with self._lock:
            self.live = live
            for name, info in live.items():
                self.registered.setdefault(name, now)
                self.info[name] = info
                if info.state == "serving":
                    self.serving.setdefault(name, now)

    def serving_now(self) -> set[str]:
        with self._lock:
            return {n for n, i in self.live.items() if i.state == "serving"}

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.poll()
            except Exception:  # a ZooKeeper hiccup: the next poll sees the change
                continue


class BenchFailed(TropicError):
    """The bench could not run to its end (the job never served, ZooKeeper did not start, ...)."""

    code = "ha_bench_failed"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchFailed(f"job {JOB!r}: {what} not reached within {timeout:.0f} s")
        time.sleep(0.05)


@dataclass(slots=True)
class RunRecord:
    """What the replicated run recorded, for :func:`report`."""

    records: list[Record] = field(default_factory=list)
    kills: list[KillEvent] = field(default_factory=list)
    kill_errors: list[str] = field(default_factory=list)
    initial: set[str] = field(default_factory=set)  # the replicas serving before the load
    final: dict[str, str | None] = field(default_factory=dict)
    final_records: list[Record] = field(default_factory=list)
    healed: bool = False
    failovers: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # the healer's
    failed_transactions: list[dict[str, Any]] = field(default_factory=list)


def replacements(run: RunRecord, watch: ReplicaWatch) -> list[dict[str, Any]]:
    """Each new replica, in order of registration, matched with the kill it answered."""
    new = sorted((t, n) for n, t in watch.registered.items() if n not in run.initial)
    out = []
    kills = iter(run.kills)
    for registered, name in new:
        kill = next(kills, None)
        served = watch.serving.get(name)
        info = watch.info.get(name)
        row: dict[str, Any] = {
            "replica": name,
            "host": info.host if info is not None else "",
            "registered_s": round(registered, 3),
            "serving_s": None if served is None else round(served, 3),
            "catch_up_s": None if served is None else round(served - registered, 3),
        }
        if kill is not None:
            row["replaces"] = kill.detail.get("replicas", [])
            row["killed_s"] = round(kill.at, 3)
            row["serving_after_kill_s"] = None if served is None else round(served - kill.at, 3)
        out.append(row)
    return out


def report(
    spec: BenchSpec,
    program: Sequence[str],
    base: dict[str, Any],
    run: RunRecord,
    watch: ReplicaWatch,
    say: Say = lambda _m: None,
) -> dict[str, Any]:
    """The bench's figures from the baseline and what the replicated run recorded (it checks the
    history for linearizability, within ``spec.check_timeout``)."""
    end = spec.duration
    successes = [r.ret for r in run.records if r.ok and r.ret is not None]
    acked: dict[str, list[str]] = {}
    attempted: dict[str, list[str]] = {}
    for r in run.records:
        if r.kind == "append" and r.value is not None:
            (acked if r.ok else attempted).setdefault(r.key, []).append(r.value.rstrip(TOKEN_END))
    audit = audit_writes(acked, attempted, run.final)
    say(f"checking {len(run.records) + len(run.final_records)} operations for linearizability")
    outcome = check(KVModel(), history([*run.records, *run.final_records]), timeout_s=spec.check_timeout)
    figures = summarise(run.records, 0.0, end)
    overhead = round(base["throughput"] / figures["throughput"], 3) if figures["throughput"] else None
    return {
        **figures,
        "read_path": spec.read_path,
        "by_kind": {
            kind: summarise([r for r in run.records if r.kind == kind], 0.0, end)
            for kind in ("get", "append")
        },
        "baseline": base,
        "overhead_ratio": overhead,
        "max_unavailability_s": round(max_unavailability(successes, 0.0, end), 3),
        "max_unavailability_window_s": [round(t, 3) for t in longest_gap(successes, 0.0, end)],
        "longest_windows_s": [[round(a, 3), round(b, 3)] for a, b in longest_gaps(successes, 0.0, end, 5)],
        "lost_acknowledged_writes": len(audit.lost),
        "lost": [f"{k}:{t}" for k, t in audit.lost[:20]],
        "duplicated_writes": len(audit.duplicated),
        "acknowledged_writes": audit.acknowledged,
        "linearizable": outcome.linearizable,
        "linearizability": {
            "result": outcome.result.value,
            "operations": outcome.operations,
            "partitions": outcome.partitions,
            "elapsed_s": round(outcome.elapsed_s, 3),
        },
        "kills": [{"at_s": round(k.at, 3), "victim": k.victim, **k.detail} for k in run.kills],
        "kill_errors": run.kill_errors,
        "replacements": replacements(run, watch),
        "healed": run.healed,
        "healer_events": run.events,
        "failed_transactions": run.failed_transactions,
        "failovers": run.failovers,
        "spec": {k: v for k, v in asdict(spec).items() if k != "program"} | {"program": list(program)},
    }
