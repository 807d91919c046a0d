"""Draining a host: cordon it, then move every VM away, one ``migrate_vm`` transaction per VM.

:func:`plan_drain` assigns all the host's VMs at once on a snapshot of the model with the shared fit rule
(:mod:`tropic.model.fit`): largest VM first, each to the best-fitting other host of its region that is not
cordoned, the capacity it takes counted before the next VM is placed. :func:`drain` runs it: the cordon
(its own transaction, so nothing new lands on the host meanwhile), then each planned migration. A
migration the transaction layer refuses (the model changed since the snapshot) is retried once without a
destination, so the server chooses one during simulation; a VM that still cannot move is reported with
the reason. Every change is a transaction, checked against every constraint.

A dead host's VMs cannot be live-migrated: with ``rebuild`` (or when the model already records the host
as failed) the host is declared failed (``declare_host_failed``, which cordons it and whose device check
refuses a host that answers), and each VM is rebuilt on its planned target from its volume
(``rebuild_vm``, :mod:`tropic.procedures.rebuild`), with the same plan, retry and report.
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
DECLARE_FAILED = "declare_host_failed"
REBUILD = "rebuild_vm"


@dataclass(frozen=True)
class DrainPlan:
    """Where each VM of ``host`` goes (``moves``) and the VMs no host can take, with the reason."""

    host: str
    moves: tuple[PlannedStep, ...]
    stuck: dict[str, str]


def plan_drain(model: Model, host: str, *, scope: str | None = None, procedure: str = MIGRATE) -> DrainPlan:
    """Assign every VM of ``host`` to another host of ``scope`` (default: the host's region); each move
    is a ``procedure`` step (``migrate_vm``, or ``rebuild_vm`` for a dead host)."""
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
        moves.append(PlannedStep(procedure, {"vm": v.path, "dest": best.path}))
    return DrainPlan(host, tuple(moves), stuck)


@dataclass
class DrainReport:
    """What a drain did: the cordon, each VM moved (VM path -> new host) and each VM left, with why.
    ``mode`` is ``migrate`` (live migration) or ``rebuild`` (the host is dead: VMs rebuilt elsewhere)."""

    host: str
    mode: str = "migrate"
    rebuild_reason: str = ""
    declared_failed_now: bool = False
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
            "mode": self.mode,
            "dead": self.mode == "rebuild",
            "rebuild_reason": self.rebuild_reason,
            "declared_failed_now": self.declared_failed_now,
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
    rebuild: bool = False,
    why: str = "",
) -> DrainReport:
    """Cordon ``host`` (unless it is already) and move every VM away; see the module docstring.
    ``read_model`` returns the current model (at least ``/compute``); ``runner`` submits transactions.
    ``rebuild``: the host is dead (``why``): declare it failed and rebuild its VMs instead of migrating."""
    say = progress or (lambda _line: None)
    report = DrainReport(host)
    model = read_model()
    h = model.reader().get(host, Host)
    if h.failed and not rebuild:
        rebuild, why = True, why or "it is declared failed"
    if rebuild:
        report.mode, report.rebuild_reason = "rebuild", why
    if rebuild and not h.failed:
        outcome = runner.run(PlannedStep(DECLARE_FAILED, {"host": host}))
        report.outcomes.append(outcome)
        if not outcome.committed:
            report.stuck[host] = f"could not declare it failed: {outcome.error or outcome.state}"
            return report
        report.declared_failed_now, report.cordoned_now = True, not h.cordoned
        say(f"declared {host} failed ({why}; transaction {outcome.txn_id}): rebuilding its VMs elsewhere")
        model = read_model()
    elif not h.cordoned:
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
    procedure = REBUILD if rebuild else MIGRATE
    plan = plan_drain(model, host, scope=scope, procedure=procedure)
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
        again: dict[str, str | int] = {"vm": vm} if scope is None else {"vm": vm, "region": scope}
        retry = runner.run(PlannedStep(procedure, again))
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
