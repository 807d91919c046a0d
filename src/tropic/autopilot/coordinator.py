"""The coordinator: the autopilot's passes, run by the controller leader only.

A pass **senses** (the snapshot source: the committed model with the predicted demand and the stale
subjects), **solves** (each configured policy, in order, answers a plan), and **plans** (the actuator's
guards screen the plan into steps, each an ordinary transaction). Passes run every ``interval`` seconds,
when an event asks for one (:meth:`Coordinator.observe`: a host's CPU reading at or above the hot
threshold; :meth:`Coordinator.trigger`: ``run-once``), and never two at a time. Between passes the loop
reads the sensors every ``sense_interval`` seconds (``sense``), and hands each reading to ``observe``: a
host turning hot gets a pass within about ``sense_interval``, however long the period is.

**Failover.** Before its first step runs, a pass is written to the controller's store
(:mod:`tropic.autopilot.passes`: id, inputs digest, steps and their idempotency keys); each step's
transaction, once known, is written there too. A leader taking over (:meth:`Coordinator.resume`, called
by :meth:`Coordinator.start`) finishes every unfinished pass: steps already submitted are found by their
keys and waited for, the others are submitted. Nothing is lost, nothing runs twice.

The clock is injected (``clock``), so tests drive passes and time explicitly (:meth:`Coordinator.run_once`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from tropic.autopilot.actuator import (
    COMMITTED,
    REFUSED,
    Executor,
    Guards,
    Migrations,
    is_final,
    screen,
    service_identity,
    step_key,
    vm_identity,
)
from tropic.autopilot.base import CPU, Observation, Plan, Policy, PolicyError, Snapshot
from tropic.autopilot.decisions import ACTED, DRY_RUN, ERROR, IDLE, Decision, DecisionLog, StepOutcome
from tropic.autopilot.passes import PassBook
from tropic.errors import TropicError

log = logging.getLogger("tropic.autopilot")

SnapshotSource = Callable[[float], Snapshot]
Sense = Callable[[float], Sequence[Observation]]  # read the sensors at a time, keep and return the readings
PERIODIC = "periodic"
RUN_ONCE = "run-once"
RESUME = "resume"
RESUME_WITHIN_S = 24 * 3600.0  # the idempotency keys' default TTL (tropic serve --idempotency-ttl)
STALE_LISTED = 200  # stale subjects a decision names (the digest covers them all)


def digest(snapshot: Snapshot) -> str:
    """A digest of a pass's inputs (hosts, VMs with predicted demand, stale subjects)."""
    body = json.dumps(
        {
            "hosts": {p: asdict(h) for p, h in sorted(snapshot.hosts.items())},
            "vms": {p: asdict(v) for p, v in sorted(snapshot.vms.items())},
            "stale": sorted(snapshot.stale),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def utilisation(snapshot: Snapshot) -> dict[str, float]:
    """Each host's predicted CPU demand / its CPUs (stale hosts left out: unknown is not 0%)."""
    out: dict[str, float] = {}
    for path, h in sorted(snapshot.hosts.items()):
        if path in snapshot.stale or not h.powered:
            continue
        demand = sum(snapshot.vms[v].demand or 0.0 for v in h.vms if v in snapshot.vms)
        out[path] = round(demand / max(h.cpus, 1), 4)
    return out


def _plan_dict(plan: Plan) -> dict[str, Any]:
    d = asdict(plan)
    d.pop("solve_s", None)
    return d


class Coordinator:
    """The autopilot's loop on the leader (see the module docstring)."""

    def __init__(
        self,
        source: SnapshotSource,
        policies: Sequence[Policy],
        executor: Executor,
        passes: PassBook,
        *,
        guards: Guards | None = None,
        interval: float = 300.0,
        time_limit: float = 10.0,
        hot_threshold: float = 0.9,
        decisions: DecisionLog | None = None,
        clock: Callable[[], float] = time.time,
        sense: Sense | None = None,
        sense_interval: float = 60.0,
        hot_gap_s: float = 300.0,
        resume_within: float = RESUME_WITHIN_S,
    ) -> None:
        if interval <= 0:
            raise ValueError("the autopilot interval must be positive")
        if sense_interval <= 0:
            raise ValueError("the autopilot's sensing interval must be positive")
        self.source = source
        self.policies = list(policies)
        self.executor = executor
        self.passes = passes
        self.guards = guards or Guards()
        self.interval = interval
        self.time_limit = time_limit
        self.hot_threshold = hot_threshold
        self.decisions = decisions if decisions is not None else DecisionLog()
        self.clock = clock
        self.sense = sense
        self.sense_interval = sense_interval
        self.hot_gap_s = hot_gap_s
        self.resume_within = resume_within  # the idempotency keys' TTL: older unsubmitted steps are dropped
        self._hot_at: dict[str, float] = {}  # host -> when its last hot reading asked for a pass
        self.migrations = Migrations()
        self.paused = False
        self.passes_run = 0
        self.last_pass_at: float | None = None
        self._pass_lock = threading.Lock()  # one pass at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._triggers: list[str] = []
        self._tlock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._seq = 0.0

    # --- control -----------------------------------------------------------------------------------
    def start(self) -> Coordinator:
        """Run passes on a thread, which first resumes the unfinished passes (a leader taking over)."""
        self._remember_history()
        self._thread = threading.Thread(target=self._loop, name="tropic-autopilot", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop; once its thread has ended, close what the pass records and the decision log
        opened in the store (their own SQLite connections)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
        for holder in (self.passes, self.decisions.book):
            close = getattr(holder, "close", None)
            if close is not None:
                with self._pass_lock:  # not under a run_once another thread is in
                    close()

    def pause(self) -> None:
        """No periodic or event-triggered pass until :meth:`unpause` (``run-once`` still runs one)."""
        self.paused = True

    def unpause(self) -> None:
        self.paused = False

    def trigger(self, reason: str = RUN_ONCE) -> None:
        """Ask the loop's thread for a pass now."""
        with self._tlock:
            self._triggers.append(reason)
        self._wake.set()

    def observe(self, obs: Observation) -> bool:
        """A sensor reading: a host's CPU (``/compute/<region>/<host>``) at or above the hot threshold
        triggers a pass (once per ``hot_gap_s`` seconds per host: a host that stays hot because nothing
        can relieve it does not make passes run back to back). Returns whether it asked for a pass."""
        host = obs.subject.count("/") == 3 and obs.subject.startswith("/compute/")
        if not (obs.metric == CPU and host and obs.value >= self.hot_threshold):
            return False
        last = self._hot_at.get(obs.subject)
        if last is not None and obs.at - last < self.hot_gap_s:
            return False
        self._hot_at[obs.subject] = obs.at
        if len(self._hot_at) > 10_000:  # bounded: forget the hosts hot longest ago
            for key in sorted(self._hot_at, key=self._hot_at.__getitem__)[:5_000]:
                del self._hot_at[key]
        self.trigger(f"hot:{obs.subject}")
        return True

    def sense_now(self) -> int:
        """Read the sensors between passes (``sense``) and hand each reading to :meth:`observe`; returns
        how many passes the readings asked for. A sensor failure is logged and asks for nothing."""
        if self.sense is None:
            return 0
        try:
            readings = self.sense(self.clock())
        except Exception:
            log.exception("autopilot: sensing between passes failed")
            return 0
        return sum(self.observe(o) for o in readings)

    def status(self) -> dict[str, Any]:
        last = self.decisions.last()
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "paused": self.paused,
            "policies": [p.name for p in self.policies],
            "interval_s": self.interval,
            "sense_interval_s": self.sense_interval if self.sense is not None else None,
            "dry_run": self.guards.dry_run,
            "guards": asdict(self.guards),
            "passes": self.passes_run,
            "last_pass_at": self.last_pass_at,
            "last_decision": None if last is None else last.to_dict(),
            "decisions_kept": len(self.decisions),
        }

    # --- passes ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self.resume()
        except Exception:
            log.exception("autopilot: resuming the unfinished passes failed")
        next_pass = time.monotonic() + self.interval
        next_sense = time.monotonic() + self.sense_interval if self.sense is not None else math.inf
        while not self._stop.is_set():
            self._wake.wait(max(0.0, min(next_pass, next_sense) - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= next_sense:
                next_sense = time.monotonic() + self.sense_interval
                if not self.paused:
                    self.sense_now()  # a hot reading queues a trigger, handled just below
            with self._tlock:
                triggers, self._triggers = self._triggers, []
            periodic = time.monotonic() >= next_pass
            if not (triggers or periodic):
                continue
            if periodic:
                next_pass = time.monotonic() + self.interval
            explicit = RUN_ONCE in triggers
            if self.paused and not explicit:
                continue
            reason = RUN_ONCE if explicit else (triggers[0] if triggers else PERIODIC)
            try:
                self.run_once(reason)
            except Exception:  # the loop outlives any pass; the pass logged what it could
                log.exception("autopilot pass failed")

    def run_once(self, trigger: str = RUN_ONCE) -> list[Decision]:
        """One pass now, on this thread: one decision per policy."""
        with self._pass_lock:
            at = self.clock()
            self.passes_run += 1
            self.last_pass_at = at
            base = f"{int(at * 1000):x}-{uuid.uuid4().hex[:6]}"
            out: list[Decision] = []
            snap: Snapshot | None = None
            names = [p.name for p in self.policies]
            for i, policy in enumerate(self.policies):
                suffix = policy.name if names.count(policy.name) == 1 else f"{policy.name}-{i}"
                try:
                    snap = self.source(at) if snap is None else snap
                except Exception as e:  # a sensor or the model could not be read: nothing is planned
                    why = e.message if isinstance(e, TropicError) else f"{type(e).__name__}: {e}"
                    out.append(self.decisions.add(Decision(base, at, trigger, policy.name, "", ERROR, why)))
                    continue
                d = self._solve_and_act(f"{base}-{suffix}", at, trigger, policy, snap)
                out.append(d)
                if d.steps and d.status == ACTED:
                    snap = None  # the next policy sees the state this one left
            return out

    def _solve_and_act(
        self, pass_id: str, at: float, trigger: str, policy: Policy, snap: Snapshot
    ) -> Decision:
        d = Decision(pass_id, at, trigger, policy.name, digest(snap), utilisation=utilisation(snap))
        d.stale = sorted(snap.stale)[:STALE_LISTED]
        try:
            plan = policy.plan(snap, budget=self.guards.budget_per_pass, time_limit=self.time_limit)
        except PolicyError as e:
            d.status, d.why = ERROR, f"policy {policy.name}: {e.message}; the configuration stays as it is"
            return self.decisions.add(d)
        except Exception as e:
            log.exception("policy %s failed", policy.name)
            d.status = ERROR
            d.why = f"policy {policy.name} failed ({type(e).__name__}: {e}); the configuration stays as it is"
            return self.decisions.add(d)
        d.gain, d.cost, d.plan, d.solve_s = plan.gain, plan.cost, _plan_dict(plan), plan.solve_s
        screened = screen(plan, snap, self.guards, self.migrations, at)
        d.held = screened.held
        if not screened.steps:
            d.status, d.why = IDLE, screened.why
            return self.decisions.add(d)
        steps = []
        for i, (procedure, args) in enumerate(screened.steps):
            step: dict[str, Any] = {"procedure": procedure, "args": args, "key": step_key(pass_id, i)}
            if procedure == "migrate_vm":
                step["who"] = vm_identity(snap, str(args["vm"]))
            elif procedure in ("spawn_service_member", "destroy_service_member"):
                step["who"] = service_identity(str(args["service"]))
            steps.append(step)
        if self.guards.dry_run:
            d.status, d.why = DRY_RUN, f"dry run: {plan.why}"
            d.steps = [StepOutcome(s["procedure"], s["args"], s["key"], None, "would run") for s in steps]
            return self.decisions.add(d)
        self._seq = max(self._seq + 1e-6, at)
        record = {
            "id": pass_id,
            "seq": self._seq,
            "at": at,
            "trigger": trigger,
            "policy": policy.name,
            "digest": d.digest,
            "why": plan.why,
            "steps": steps,
            "done": False,
        }
        self.passes.put_autopilot_pass(record)  # durable before anything runs
        d.status, d.why = ACTED, plan.why
        d.steps = self._execute(record)
        return self.decisions.add(d)

    def _execute(self, record: dict[str, Any]) -> list[StepOutcome]:
        """Run (or finish) a recorded pass's steps, writing each transaction and outcome to the record."""
        out = []
        for step in record["steps"]:
            if not is_final(step.get("state", "")):
                if step.get("txn") is None:
                    try:
                        step["txn"] = self.executor.submit(step["procedure"], step["args"], step["key"])
                    except TropicError as e:  # refused before any record exists (e.g. a VM gone)
                        step["state"], step["error"] = REFUSED, e.message
                    self.passes.put_autopilot_pass(record)
                if step.get("txn") is None:
                    state, error = step["state"], step["error"]
                else:
                    state, error = self.executor.outcome(int(step["txn"]), self.guards.step_timeout_s)
                step["state"], step["error"] = state, error
                if state == COMMITTED and "who" in step:
                    self.migrations.record(step["who"], float(record["at"]))
            out.append(
                StepOutcome(
                    step["procedure"],
                    step["args"],
                    step["key"],
                    step.get("txn"),
                    step["state"],
                    step.get("error", ""),
                )
            )
        record["done"] = all(is_final(s.get("state", "")) for s in record["steps"])
        self.passes.put_autopilot_pass(record)
        return out

    def resume(self) -> list[Decision]:
        """Finish every pass a previous leader recorded and did not finish."""
        out = []
        with self._pass_lock:
            for record in self.passes.get_autopilot_passes():
                if record.get("done"):
                    continue
                d = Decision(
                    str(record["id"]),
                    float(record["at"]),
                    RESUME,
                    str(record["policy"]),
                    str(record["digest"]),
                    ACTED,
                    f"resumed after a leader change: {record.get('why', '')}",
                )
                age = self.clock() - float(record["at"])
                if age > self.resume_within:
                    # Its steps' idempotency keys may have expired: a step submitted before the crash but
                    # not recorded could not be found by its key and would run twice. The plan is stale
                    # anyway: steps with no known transaction are dropped; the next pass plans afresh.
                    for step in record["steps"]:
                        if step.get("txn") is None and not is_final(step.get("state", "")):
                            step["state"] = REFUSED
                            ttl_h = self.resume_within / 3600
                            step["error"] = (
                                f"not resumed: the pass is {age / 3600:.1f} h old, older than the "
                                f"idempotency keys' {ttl_h:.1f} h; the next pass plans afresh"
                            )
                    d.why = f"resumed {age / 3600:.1f} h late: unsubmitted steps dropped; {d.why}"
                d.steps = self._execute(record)
                out.append(self.decisions.add(d))
        return out

    def _remember_history(self) -> None:
        """The migrations of the stored passes, for the cool-down and the daily budget."""
        for record in self.passes.get_autopilot_passes():
            for step in record["steps"]:
                if step.get("state") == COMMITTED and "who" in step:
                    self.migrations.record(step["who"], float(record["at"]))
