"""Self-healing of replicated jobs: a dead replica is replaced by a transaction, with backoff.

Each pass (every ``interval`` seconds, and at once when a watched job's ZooKeeper replica nodes change)
judges every replica of every job in the model:

* **dead** when the driver runs its process and it exited (its exit code is kept), or its host failed
  (``host_down``: the sim's powered-off host); or when its ZooKeeper node, seen before, is gone (its
  session ended), or never appeared within ``register_s`` of its start;
* otherwise **serving** or **catching-up** (what the replica wrapper writes in its node, with its applied
  index: the lag is the log head minus it), **starting** (alive, not registered yet) or **running** (alive,
  no ZooKeeper to ask).

A dead replica is replaced by ``replace_job_replica``, one transaction: its process halted, its VM
deleted, a new replica placed in a failure domain no other replica uses (avoiding a failed host) and
started; a job short of replicas (a replacement that could not be placed) gets ``add_job_replica``.
A replica that dies within ``quick_exit_s`` of its start without ever serving (a program that exits at
once) counts as a quick failure: the job is reported *crash-looping* (its status, an event with the exit
code and the log's last line) and the next start waits ``backoff_s x 2^(n-1)`` (at most
``max_backoff_s``) after the n-th quick failure in a row, never a tight loop. A replica that serves
resets the count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tropic.drivers.base import covers
from tropic.errors import TropicError
from tropic.ha.contract import ReplicaInfo
from tropic.jobs.observe import JobSpec, JobZooKeeper, ReplicaSpec, read_jobs
from tropic.model import Value
from tropic.txn import FINAL, Controller

log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(slots=True)
class ReplicaHealth:
    """A replica as the last pass saw it."""

    name: str
    host: str
    domain: str
    health: str  # serving, catching-up, starting, running, dead
    pid: int = 0
    address: str = ""
    applied: int = -1
    lag: int | None = None
    exit_code: int | None = None
    reason: str = ""


@dataclass(slots=True)
class JobHealth:
    """A job as the last pass saw it."""

    name: str
    status: str = "pending"  # healthy, degraded, crash-looping, down
    message: str = ""
    log_head: int = -1
    replicas: list[ReplicaHealth] = field(default_factory=list)
    quick_failures: int = 0
    next_start_in_s: float = 0.0
    replacements: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Memory:
    """What the healer remembers of a job between passes."""

    seen_in_zk: set[str] = field(default_factory=set)
    served: set[str] = field(default_factory=set)
    first_seen: dict[str, float] = field(default_factory=dict)
    quick: int = 0
    not_before: float = 0.0
    replacements: int = 0
    last_failure: str = ""


def _tail(path: Value) -> str:
    """The last non-empty line of a replica's log (what a program that died said last)."""
    if not isinstance(path, str) or not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class JobHealer:
    """The healing loop of the controller that leads (see the module docstring)."""

    def __init__(
        self,
        controller: Controller,
        *,
        zk: JobZooKeeper | None = None,
        interval: float = 1.0,
        register_s: float = 30.0,
        quick_exit_s: float = 10.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        txn_timeout_s: float = 120.0,
        clock: Clock = time.monotonic,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.controller = controller
        self.zk = zk
        self.interval = interval
        self.register_s = register_s
        self.quick_exit_s = quick_exit_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.txn_timeout_s = txn_timeout_s
        self.clock = clock
        self.on_event = on_event
        self.events: deque[dict[str, Any]] = deque(maxlen=200)  # the newest events, for the views
        self.health: dict[str, JobHealth] = {}
        self.passes = 0
        self._memory: dict[str, _Memory] = {}
        # Hosts seen down: a down host's replica records go with its replaced replicas, yet it must not
        # get a replacement while it stays down (a host seen up again, running a replica, is dropped).
        self._hosts_down: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- the loop -----------------------------------------------------------------------------------------
    def start(self) -> JobHealer:
        self._thread = threading.Thread(target=self._run, name="job-healer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.zk is not None:
            self.zk.close()
            self.zk = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.heal_once()
            except Exception:  # a pass that fails is logged; the next one tries again
                log.exception("job healing pass failed")
            self._wake.wait(self.interval)

    # --- one pass -----------------------------------------------------------------------------------------
    def heal_once(self) -> dict[str, JobHealth]:
        """Judge every replica, replace the dead ones (with backoff); returns the jobs' health."""
        jobs, busy = self.controller.call(
            lambda: (read_jobs(self.controller.model), self.controller.busy_paths())
        )
        procs = self.controller.driver.replica_processes()
        health: dict[str, JobHealth] = {}
        for job in jobs:
            if any(covers(b, job.path) or covers(job.path, b) for b in busy):
                # a transaction is changing the job (its replicas are starting or stopping): judge it
                # once the transaction is over, not halfway
                old = self.health.get(job.name)
                health[job.name] = old if old is not None else JobHealth(job.name, status="changing")
                continue
            try:
                health[job.name] = self._heal_job(job, procs)
            except TropicError as e:
                log.warning("job %s: healing pass failed: %s", job.name, e)
                health[job.name] = JobHealth(job.name, status="unknown", message=str(e))
        for gone in set(self._memory) - {j.name for j in jobs}:
            self._forget(gone)
        with self._lock:
            self.health = health
            self.passes += 1
        return health

    def _forget(self, job: str) -> None:
        self._memory.pop(job, None)
        if self.zk is not None:
            try:
                self.zk.forget(job)
            except Exception as e:  # its nodes stay: harmless, the next job of that name starts its log anew
                log.warning("job %s: could not remove its ZooKeeper nodes: %s", job, e)

    def _zk_view(self, job: JobSpec) -> tuple[dict[str, ReplicaInfo] | None, int]:
        if self.zk is None:
            return None, -1
        self.zk.watch(job.name, self.wake)
        return self.zk.replicas(job.name), self.zk.log_head(job.name)

    def _heal_job(self, job: JobSpec, procs: dict[str, dict[str, Value]]) -> JobHealth:
        mem = self._memory.setdefault(job.name, _Memory())
        infos, head = self._zk_view(job)
        now = self.clock()
        out = JobHealth(job.name, log_head=head, replacements=mem.replacements)
        dead: list[tuple[ReplicaSpec, ReplicaHealth, bool]] = []  # (replica, health, host down)
        for r in job.members:
            mem.first_seen.setdefault(r.name, now)
            tracks = self.controller.driver.runs_replicas_on(r.host)
            h, host_down = self._judge(r, procs.get(r.path), tracks, infos, head, mem, now)
            out.replicas.append(h)
            lived = self._lived(r, procs.get(r.path), mem, now)
            if h.health == "dead":
                # exited by itself soon after its start, never serving: the program fails at once
                by_itself = not host_down and (h.exit_code is None or h.exit_code >= 0)
                if by_itself and r.name not in mem.served and lived < self.quick_exit_s:
                    h.reason += " (quick exit)"
                    mem.last_failure = f"{r.name}: {h.reason}"
                dead.append((r, h, host_down))
            elif h.health == "serving" or (h.health == "running" and lived >= self.quick_exit_s):
                mem.served.add(r.name)
                mem.quick = 0
        self._hosts_down |= {str(p["host"]) for p in procs.values() if p.get("host_down")}
        self._hosts_down -= {
            str(p["host"]) for p in procs.values() if p.get("alive") and not p.get("host_down")
        }
        down = sorted(self._hosts_down)
        for r, h, host_down in dead:
            self._replace(job, r, h, down if host_down else [], mem, now)
        if not dead and len(job.members) < job.replicas and now >= mem.not_before:
            self._submit(job, "add_job_replica", {"job": job.name}, f"adds a replica to {job.name}", mem)
        return self._status(job, out, mem, now)

    def _lived(self, r: ReplicaSpec, proc: dict[str, Value] | None, mem: _Memory, now: float) -> float:
        if proc is not None and isinstance(proc.get("started"), float):
            return time.time() - float(proc["started"])
        return now - mem.first_seen.get(r.name, now)

    def _judge(
        self,
        r: ReplicaSpec,
        proc: dict[str, Value] | None,
        tracks: bool,
        infos: dict[str, ReplicaInfo] | None,
        head: int,
        mem: _Memory,
        now: float,
    ) -> tuple[ReplicaHealth, bool]:
        h = ReplicaHealth(r.name, r.host, r.domain, "running")
        host_down = bool(proc and proc.get("host_down"))
        if proc is not None:
            pid = proc.get("pid")
            h.pid = pid if isinstance(pid, int) else 0
            code = proc.get("exit_code")
            h.exit_code = int(code) if isinstance(code, int) else None
        info = None if infos is None else infos.get(r.name)
        if info is not None:
            mem.seen_in_zk.add(r.name)
            h.address, h.applied, h.pid = info.address, info.applied, info.pid or h.pid
            h.lag = max(0, head - info.applied) if head >= 0 else 0
        if host_down:
            h.health, h.reason = "dead", f"its host {r.host} is down"
        elif proc is not None and not proc.get("alive"):
            code = "" if h.exit_code is None else f" with code {h.exit_code}"
            tail = _tail(proc.get("log"))
            h.health, h.reason = "dead", f"its process exited{code}" + (f": {tail}" if tail else "")
        elif tracks and proc is None and r.state == "running":
            h.health, h.reason = "dead", "its process is gone"
        elif infos is not None and info is None and r.name in mem.seen_in_zk:
            h.health, h.reason = "dead", "its ZooKeeper session ended (node gone)"
        elif infos is not None and info is None and now - mem.first_seen[r.name] > self.register_s:
            h.health, h.reason = "dead", f"it did not register in ZooKeeper within {self.register_s:g} s"
        elif info is not None:
            h.health = info.state
        elif infos is not None:
            h.health = "starting"
        return h, host_down

    def _replace(
        self, job: JobSpec, r: ReplicaSpec, h: ReplicaHealth, down: list[str], mem: _Memory, now: float
    ) -> None:
        quick = h.reason.endswith("(quick exit)")
        if now < mem.not_before:
            return  # backing off
        self._event(job.name, r.name, "replica-dead", f"replica {r.name} on {r.host} is dead: {h.reason}")
        if quick:
            mem.quick += 1
            delay = min(self.backoff_s * 2 ** (mem.quick - 1), self.max_backoff_s)
            mem.not_before = now + delay
            self._event(
                job.name,
                r.name,
                "crash-loop",
                f"job {job.name}: {mem.quick} quick exit(s) in a row; next start in {delay:g} s",
            )
        args: dict[str, Value] = {"job": job.name, "replica": r.name}
        if down:
            args["avoid"] = ",".join(sorted({*down, r.host}))
        if self._submit(job, "replace_job_replica", args, f"replaces {r.name}", mem):
            mem.replacements += 1
            mem.seen_in_zk.discard(r.name)
            mem.first_seen.pop(r.name, None)

    def _submit(self, job: JobSpec, procedure: str, args: dict[str, Value], what: str, mem: _Memory) -> bool:
        try:
            t = self.controller.wait(
                self.controller.submit(procedure, args, submitter="job-healer"), self.txn_timeout_s
            )
        except TropicError as e:
            self._event(job.name, "", "replace-failed", f"{procedure} {args}: {e}")
            return False
        if t.state not in FINAL:
            self._event(job.name, "", "replace-pending", f"transaction {t.id} ({what}) still runs")
            return False
        if t.state.value != "COMMITTED":
            why = (t.error or {}).get("message", t.state.value)
            self._event(job.name, "", "replace-failed", f"transaction {t.id} ({what}): {why}")
            if now_backoff := min(self.backoff_s * 2 ** max(0, mem.quick), self.max_backoff_s):
                mem.not_before = max(mem.not_before, self.clock() + now_backoff)
            return False
        self._event(job.name, "", "replaced", f"transaction {t.id} {what}")
        return True

    def _status(self, job: JobSpec, out: JobHealth, mem: _Memory, now: float) -> JobHealth:
        out.quick_failures = mem.quick
        out.next_start_in_s = round(max(0.0, mem.not_before - now), 3)
        out.replacements = mem.replacements
        up = [h for h in out.replicas if h.health in ("serving", "catching-up", "starting", "running")]
        dead = [h for h in out.replicas if h.health == "dead"]
        if mem.quick:
            out.status = "crash-looping"
            out.message = (
                f"{mem.quick} quick exit(s) in a row (last: {mem.last_failure}); "
                f"next start in {out.next_start_in_s:g} s"
            )
        elif not up:
            out.status = "down"
        elif len(up) < job.replicas or dead:
            out.status = "degraded"
            out.message = "; ".join(f"{h.name}: {h.reason}" for h in dead)
        else:
            out.status = "healthy"
        return out

    def _event(self, job: str, replica: str, kind: str, message: str) -> None:
        ev = {"time": time.time(), "job": job, "replica": replica, "kind": kind, "message": message}
        log.info("job %s: %s", job, message)
        self.events.append(ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("job event listener failed")

    def snapshot(self, job: str | None = None) -> dict[str, Any]:
        """The last pass's health (of one job, or of all) and the newest events, as plain data."""
        with self._lock:
            health = {n: h.to_dict() for n, h in self.health.items() if job is None or n == job}
        events = [e for e in self.events if job is None or e["job"] == job]
        return {"health": health, "events": events[-50:], "passes": self.passes}
