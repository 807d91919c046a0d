"""Draining a host: cordon it, then move every VM away, one ``migrate_vm`` transaction per VM.

:func:`plan_drain` assigns all the host's VMs at once on a snapshot of the model with the shared fit rule
(:mod:`tropic.model.fit`): largest VM first, each to the best-fitting other host of its region that is not
cordoned, the capacity it takes counted before the next VM is placed. :func:`drain` runs it: the cordon
(its own transaction, so nothing new lands on the host meanwhile), then each planned migration. A
migration the transaction layer refuses (the model changed since the snapshot) is retried once without a
destination, so the server chooses one during simulation; a VM that still cannot move is reported with
the reason. Every change is a transaction, checked against every constraint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tropic.model import VM, Host, Model
from tropic.model.fit import choose, why_none
from tropic.optimize.actuator import StepOutcome, StepRunner
from tropic.optimize.plan import MIGRATE, PlannedStep
from tropic.procedures.placement import candidates

CORDON = "cordon_host"


@dataclass(frozen=True)
class DrainPlan:
    """Where each VM of ``host`` goes (``moves``) and the VMs no host can take, with the reason."""

    host: str
    moves: tuple[PlannedStep, ...]
    stuck: dict[str, str]


def plan_drain(model: Model, host: str, *, scope: str | None = None) -> DrainPlan:
    """Assign every VM of ``host`` to another host of ``scope`` (default: the host's region)."""
    view = model.reader()
    h = view.get(host, Host)  # UnknownResource naming the path when it is not a host
    where = scope or h.parent_path
    cands = {c.path: c for c in candidates(view, where) if c.path != host}
    vms = sorted(h.vms(), key=lambda v: (-v.memory_mib, -v.vcpus, v.name))
    moves: list[PlannedStep] = []
    stuck: dict[str, str] = {}
    for v in vms:
        best = choose(cands.values(), v.vcpus, v.memory_mib)
        if best is None:
            stuck[v.path] = why_none(cands.values(), v.vcpus, v.memory_mib, f"in {where} other than {host}")
            continue
        cands[best.path] = best.take(v.vcpus, v.memory_mib)
        moves.append(PlannedStep(MIGRATE, {"vm": v.path, "dest": best.path}))
    return DrainPlan(host, tuple(moves), stuck)


@dataclass
class DrainReport:
    """What a drain did: the cordon, each VM moved (VM path -> new host) and each VM left, with why."""

    host: str
    cordoned_now: bool = False
    moved: dict[str, str] = field(default_factory=dict)
    stuck: dict[str, str] = field(default_factory=dict)
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stuck

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "ok": self.ok,
            "cordoned_now": self.cordoned_now,
            "moved": dict(self.moved),
            "stuck": dict(self.stuck),
            "transactions": [o.to_dict() for o in self.outcomes],
        }


Progress = Callable[[str], None]


def _dest_of(model: Model, vm_name: str, source: str) -> str:
    """The host VM ``vm_name`` (which was on ``source``) is on now, in a freshly read model."""
    for path, node in model.walk("/compute"):
        if node.kind == VM.kind and path.rsplit("/", 1)[1] == vm_name and not path.startswith(source + "/"):
            return path.rsplit("/", 1)[0]
    return "?"


def drain(
    host: str,
    read_model: Callable[[], Model],
    runner: StepRunner,
    *,
    scope: str | None = None,
    progress: Progress | None = None,
) -> DrainReport:
    """Cordon ``host`` (unless it is already) and move every VM away; see the module docstring.
    ``read_model`` returns the current model (at least ``/compute``); ``runner`` submits transactions."""
    say = progress or (lambda _line: None)
    report = DrainReport(host)
    model = read_model()
    h = model.reader().get(host, Host)
    if not h.cordoned:
        outcome = runner.run(PlannedStep(CORDON, {"host": host}))
        report.outcomes.append(outcome)
        if not outcome.committed:
            report.stuck[host] = f"could not cordon: {outcome.error or outcome.state}"
            return report
        report.cordoned_now = True
        say(f"cordoned {host} (transaction {outcome.txn_id})")
        model = read_model()
    else:
        say(f"{host} is already cordoned")
    plan = plan_drain(model, host, scope=scope)
    report.stuck.update(plan.stuck)
    total = len(plan.moves) + len(plan.stuck)
    for i, step in enumerate(plan.moves, 1):
        vm = str(step.args["vm"])
        outcome = runner.run(step)
        report.outcomes.append(outcome)
        if outcome.committed:
            report.moved[vm] = str(step.args["dest"])
            say(f"[{i}/{total}] {vm} -> {step.args['dest']} (transaction {outcome.txn_id})")
            continue
        # The model changed since the plan: let the server choose during simulation instead.
        retry = runner.run(PlannedStep(MIGRATE, {"vm": vm} if scope is None else {"vm": vm, "region": scope}))
        report.outcomes.append(retry)
        if retry.committed:
            dest = _dest_of(read_model(), vm.rsplit("/", 1)[1], host)
            report.moved[vm] = dest
            say(f"[{i}/{total}] {vm} -> {dest} (chosen by the server, transaction {retry.txn_id})")
        else:
            report.stuck[vm] = retry.error or outcome.error or retry.state
            say(f"[{i}/{total}] {vm} cannot move: {report.stuck[vm]}")
    for vm, why in plan.stuck.items():
        say(f"{vm} cannot move: {why}")
    return report
