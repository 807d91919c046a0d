"""Bridge between the optimizer's plain dataclasses and the platform: read hosts and VMs from the logical
model, and run plan steps as transactions through a :class:`~tropic.txn.Controller`.

Capacities mirror the model's own constraints: a host offers ``floor(cpus * cpu_overcommit)`` vCPUs
(``Host.vcpus_fit``) and ``memory_mib`` MiB (``Host.memory_fits``); its region is the ``/compute/<region>``
it sits under and its failure domain the host's ``failure_domain`` attribute. VM names must be unique
across the model, because a plan follows a VM by name from host to host.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tropic.errors import InvalidArguments
from tropic.model import Host as ModelHost
from tropic.model import Model, parent_of
from tropic.optimize.actuator import StepOutcome
from tropic.optimize.placement import (
    VM,
    Host,
    PlacementConstraint,
    PlacementObjective,
    PlacementProblem,
)
from tropic.optimize.plan import PlannedStep
from tropic.txn import Controller, State

COMPUTE = "/compute"


def regions(model: Model) -> list[str]:
    """The compute regions of the model (the children of ``/compute``)."""
    return [p.rsplit("/", 1)[1] for p in model.children(COMPUTE)]


def read_fleet(
    model: Model, *, region: str | None = None, cordoned: bool = False
) -> tuple[tuple[Host, ...], tuple[VM, ...]]:
    """The hosts under ``/compute`` (or ``/compute/<region>``) and the VMs running on them, in path order.
    Cordoned hosts and their VMs are left out unless ``cordoned``: nothing may be placed on such a host,
    and its VMs leave it by a drain, not by a rebalance."""
    view = model.reader()
    hosts: list[Host] = []
    vms: list[VM] = []
    seen: dict[str, str] = {}
    root = COMPUTE if region is None else f"{COMPUTE}/{region}"
    if root not in model:
        raise InvalidArguments(f"no compute region {region!r} in the model", path=root)
    for path, node in model.walk(root):
        if node.kind != ModelHost.kind:
            continue
        h = view.get(path, ModelHost)
        if h.cordoned and not cordoned:
            continue
        region = parent_of(path).rsplit("/", 1)[1]
        hosts.append(
            Host(path, math.floor(h.cpus * h.cpu_overcommit), h.memory_mib, region, h.failure_domain)
        )
        for v in h.vms():
            if v.name in seen:
                raise InvalidArguments(
                    f"VM name {v.name!r} is used on both {seen[v.name]} and {path}; the optimizer needs "
                    "unique VM names",
                    path=v.path,
                )
            seen[v.name] = path
            vms.append(VM(v.name, v.vcpus, v.memory_mib, host=path, image=v.image))
    return tuple(hosts), tuple(vms)


def model_problem(
    model: Model,
    *,
    region: str | None = None,
    new_vms: Iterable[VM] = (),
    constraints: Iterable[PlacementConstraint] = (),
    objective: PlacementObjective | None = None,
) -> PlacementProblem:
    """A placement problem over the model's hosts (of one ``region``, or all): the VMs running there
    (which may migrate) plus ``new_vms`` (to spawn; give them an ``image`` path)."""
    hosts, running = read_fleet(model, region=region)
    extra = tuple(new_vms)
    for v in extra:
        if v.host is not None:
            raise InvalidArguments(f"new VM {v.name} must not have a current host", path=v.name)
    return PlacementProblem(hosts, running + extra, tuple(constraints), objective or PlacementObjective())


def controller_problem(
    controller: Controller,
    *,
    region: str | None = None,
    new_vms: Iterable[VM] = (),
    constraints: Iterable[PlacementConstraint] = (),
    objective: PlacementObjective | None = None,
) -> PlacementProblem:
    """:func:`model_problem` on a controller's committed model, read on its logical thread."""
    extra, rules = tuple(new_vms), tuple(constraints)
    return controller.call(
        lambda: model_problem(
            controller.model, region=region, new_vms=extra, constraints=rules, objective=objective
        )
    )


def controller_placement(controller: Controller) -> dict[str, str]:
    """VM name -> host path of every VM in a controller's committed model."""
    return controller.call(
        lambda: {v.name: v.host for v in read_fleet(controller.model, cordoned=True)[1] if v.host}
    )


class ControllerRunner:
    """Runs each plan step as one transaction on ``controller`` and waits for it to end, so the step is
    simulated, constraint-checked, locked and logged like any other request."""

    def __init__(
        self, controller: Controller, *, submitter: str = "optimizer", timeout_s: float = 120.0
    ) -> None:
        self.controller = controller
        self.submitter = submitter
        self.timeout_s = timeout_s

    def run(self, step: PlannedStep) -> StepOutcome:
        txn = self.controller.submit(step.procedure, dict(step.args), submitter=self.submitter)
        txn = self.controller.wait(txn, self.timeout_s)
        error = None
        if txn.error is not None:
            error = str(txn.error.get("message", txn.error))
        return StepOutcome(
            step=step,
            committed=txn.state is State.COMMITTED,
            state=txn.state.value,
            txn_id=str(txn.id),
            error=error,
        )
