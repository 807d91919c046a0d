"""The actuator: a plan becomes ordinary transactions, under guards.

A plan's difference from the current configuration becomes, in this order: ``power_on_host`` (hosts a
plan needs), ``spawn_vm``, ``migrate_vm`` (with its destination), ``destroy_vm``, ``power_off_host``
(emptied hosts). When the plan's ``service`` is set, its spawns and destroys are the service's members:
``spawn_service_member`` and ``destroy_service_member`` (the VM and the member record in one transaction).
Each is one transaction, checked by the transaction layer like any other: a step that
would violate a constraint aborts in simulation and never reaches a device; a step that fails on a device
rolls back as usual, and the next pass plans again from the state that resulted.

Guards (:class:`Guards`), applied before anything runs:

* **hysteresis**: the plan runs only when ``gain > cost x hysteresis``;
* **cool-down**: a VM migrated less than ``cooldown_s`` ago is not moved again;
* **budget per VM per day**: at most ``per_vm_per_day`` migrations of one VM in 24 h;
* **budget per pass**: at most ``budget_per_pass`` migrations (the policy is asked for no more, and the
  actuator keeps the first ones); a managed service's spawns and destroys count too (all or none: an
  overlay is changed whole);
* **service cool-down**: a service whose members changed less than ``cooldown_s`` ago is not changed
  (its steps are ordered so that it never exceeds ``max_members``: spawns while there is room, then a
  destroy before each further spawn);
* **dry run**: the steps are recorded as what would run, and nothing is submitted.

Each step is submitted with the idempotency key ``autopilot:<pass id>:<index>``: resubmitting a pass
(after a failover) finds the transactions already submitted (see :mod:`tropic.autopilot.passes`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tropic.autopilot.base import Move, Plan, Snapshot
from tropic.errors import TropicError
from tropic.records import key_id
from tropic.records.states import FINAL, State
from tropic.txn import Controller

DAY = 86400.0
SWEEP_EVERY = 1_000  # migrations recorded between two sweeps of the VMs with none in the last day
SEEN_KEYS = 10_000  # step keys a process remembers (the pass records and the store answer older ones)
OWNER = "autopilot"  # the idempotency keys' owner, and the transactions' submitter


@dataclass(frozen=True, slots=True)
class Guards:
    budget_per_pass: int = 5
    per_vm_per_day: int = 3
    hysteresis: float = 1.5
    cooldown_s: float = 3600.0
    dry_run: bool = False
    step_timeout_s: float = 300.0  # how long one step's transaction may take before the pass moves on

    def __post_init__(self) -> None:
        if self.budget_per_pass < 0 or self.per_vm_per_day < 0:
            raise ValueError("migration budgets cannot be negative")
        if self.hysteresis < 0 or self.cooldown_s < 0:
            raise ValueError("hysteresis and cool-down cannot be negative")


class Migrations:
    """When each VM last migrated (by its uid, or its name when it has none): the memory behind the
    cool-down and the per-VM daily budget. Rebuilt from the stored pass records on taking the lead."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._records = 0

    def record(self, vm: str, at: float) -> None:
        with self._lock:
            self._times[vm].append(at)
            self._records += 1
            if self._records % SWEEP_EVERY == 0:  # forget VMs with nothing in the last day (destroyed ones)
                for key in [k for k, ts in self._times.items() if not ts or ts[-1] < at - DAY]:
                    del self._times[key]

    def __len__(self) -> int:
        """VMs remembered (those that migrated within a day of the last sweep)."""
        with self._lock:
            return len(self._times)

    def since(self, vm: str, at: float) -> list[float]:
        with self._lock:
            times = self._times.get(vm)
            if times is None:
                return []
            while times and times[0] < at - DAY:  # nothing older than a day matters to any guard
                times.popleft()
            return [t for t in times if t >= at]


@dataclass(slots=True)
class Screened:
    """What the guards let through: the steps (procedure, arguments) in order, the moves held back with
    why, and why nothing runs when nothing does."""

    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    why: str = ""


def vm_identity(snapshot: Snapshot, vm: str) -> str:
    state = snapshot.vms.get(vm)
    return state.uid if state is not None and state.uid else vm.rsplit("/", 1)[-1]


def screen(plan: Plan, snapshot: Snapshot, guards: Guards, history: Migrations, now: float) -> Screened:
    """Apply the guards to ``plan`` (see the module docstring)."""
    out = Screened()
    if plan.empty:
        out.why = plan.why or "the policy proposes no change"
        return out
    if not plan.gain > plan.cost * guards.hysteresis:
        out.why = (
            f"below hysteresis: predicted gain {plan.gain:.3g} does not exceed cost {plan.cost:.3g} x "
            f"{guards.hysteresis:g}"
        )
        return out
    if plan.service and (plan.spawns or plan.destroys):
        held = _hold_service(plan, guards, history, now)
        if held:
            out.held.append(held)
            out.why = f"the service change is held by a guard: {held}"
            return out
    moves: list[Move] = []
    for m in plan.moves:
        who = vm_identity(snapshot, m.vm)
        if guards.cooldown_s > 0 and history.since(who, now - guards.cooldown_s):
            out.held.append(f"{m.vm}: cooling down (migrated less than {guards.cooldown_s:g} s ago)")
        elif len(history.since(who, now - DAY)) >= guards.per_vm_per_day:
            out.held.append(f"{m.vm}: daily budget spent ({guards.per_vm_per_day} migrations in 24 h)")
        elif len(moves) >= guards.budget_per_pass:
            out.held.append(f"{m.vm}: pass budget spent ({guards.budget_per_pass} migrations)")
        else:
            moves.append(m)
    out.steps += [("power_on_host", {"host": h}) for h in plan.power_on]
    if plan.service:  # members of a managed service: the VM and its member record in one transaction
        out.steps += _member_steps(plan, snapshot)
    else:
        out.steps += [
            (
                "spawn_vm",
                {
                    "name": s.name,
                    "host": s.host,
                    "image": s.image,
                    "vcpus": s.vcpus,
                    "memory_mib": s.memory_mib,
                },
            )
            for s in plan.spawns
        ]
    out.steps += [("migrate_vm", {"vm": m.vm, "dest": m.dest}) for m in moves]
    if not plan.service:
        out.steps += [("destroy_vm", {"vm": v}) for v in plan.destroys]
    out.steps += [("power_off_host", {"host": h}) for h in plan.power_off]
    out.steps += [
        ("gc_image", {"image": c.image, "keep": c.keep, "published_before": c.published_before})
        for c in plan.collect
    ]
    if not out.steps:
        out.why = "every move is held by a guard: " + "; ".join(out.held)
    return out


def _member_steps(plan: Plan, snapshot: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """A service's spawns and destroys in an order that never takes it past ``max_members`` (a model
    constraint) and keeps as many members as it can meanwhile: spawns while there is room, then each
    further spawn after a destroy, then the remaining destroys."""
    service = snapshot.services.get(plan.service)
    room = len(plan.spawns) if service is None else max(0, service.max_members - len(service.members))
    spawns = [
        ("spawn_service_member", {"service": plan.service, "name": s.name, "host": s.host})
        for s in plan.spawns
    ]
    destroys = [("destroy_service_member", {"service": plan.service, "vm": v}) for v in plan.destroys]
    steps = spawns[:room]
    for spawn in spawns[room:]:
        if destroys:
            steps.append(destroys.pop(0))
        steps.append(spawn)
    return steps + destroys


def service_identity(service: str) -> str:
    """The key under which a managed service's membership changes are remembered (its cool-down)."""
    return f"service:{service}"


def _hold_service(plan: Plan, guards: Guards, history: Migrations, now: float) -> str:
    """Why a service's spawns and destroys must wait, or "": they count against the pass budget, and a
    service whose members changed less than ``cooldown_s`` ago is left as it is (no overlay flapping)."""
    changes = len(plan.spawns) + len(plan.destroys)
    if changes > guards.budget_per_pass:
        return f"{plan.service}: {changes} member changes exceed the pass budget ({guards.budget_per_pass})"
    if guards.cooldown_s > 0 and history.since(service_identity(plan.service), now - guards.cooldown_s):
        return f"{plan.service}: cooling down (its members changed less than {guards.cooldown_s:g} s ago)"
    return ""


def step_key(pass_id: str, index: int) -> str:
    return f"{OWNER}:{pass_id}:{index}"


def fingerprint(procedure: str, args: Mapping[str, Any]) -> str:
    """As the API fingerprints a request (the same key for the same request)."""
    body = json.dumps({"procedure": procedure, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class Executor(Protocol):
    """Where the actuator's transactions go."""

    def submit(self, procedure: str, args: dict[str, Any], key: str) -> int:
        """Submit (once per ``key``: a resubmission answers the transaction already made) -> its id."""

    def outcome(self, txn_id: int, timeout: float) -> tuple[str, str]:
        """Wait for the transaction to end: (state, error message or "")."""


class ControllerExecutor:
    """Transactions through a controller. Keys are written with the transaction's first record by stores
    that keep them (ZooKeeper), and looked up there first, so a new leader never submits a step twice;
    within one process, a key seen already answers its transaction too."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._seen: OrderedDict[str, int] = OrderedDict()  # the newest SEEN_KEYS keys (the store has all)
        self._lock = threading.Lock()

    def submit(self, procedure: str, args: dict[str, Any], key: str) -> int:
        kid = key_id(OWNER, key)
        with self._lock:
            if kid in self._seen:
                return self._seen[kid]
            store = self.controller.store
            for lookup in ("lookup_key", "lookup_pending_key"):
                fn = getattr(store, lookup, None)
                seen = fn(kid) if fn is not None else None
                if seen is not None:
                    self._remember(kid, int(seen[0]))
                    return int(seen[0])
            t = self.controller.submit(
                procedure, args, submitter=OWNER, durable=True, key=(kid, fingerprint(procedure, args))
            )
            self._remember(kid, t.id)
            return t.id

    def _remember(self, kid: str, txn: int) -> None:
        self._seen[kid] = txn
        while len(self._seen) > SEEN_KEYS:
            self._seen.popitem(last=False)

    def outcome(self, txn_id: int, timeout: float) -> tuple[str, str]:
        try:
            t = self.controller.wait(txn_id, timeout)
        except TimeoutError as e:
            return "TIMEOUT", str(e)
        except TropicError as e:
            return "UNKNOWN", e.message
        err = t.error
        msg = "" if err is None else str(err.get("message", err)) if isinstance(err, dict) else str(err)
        return t.state.value, msg


COMMITTED = State.COMMITTED.value
REFUSED = "REFUSED"  # the submission was refused before any transaction existed (a final outcome)


def is_final(state: str) -> bool:
    return state == REFUSED or state in {s.value for s in FINAL}
