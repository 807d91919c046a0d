"""Follow the sun as an autopilot plug-in: :class:`SunPolicy` runs a :class:`~tropic.sun.planner.SunPlanner`
(the decision: a CP-SAT model of where the members and the leader go, with forecast, hysteresis, budget
and anti-flap window) on the autopilot's :class:`~tropic.autopilot.base.Snapshot`. The service's members
are VMs on hosts, a host's region is its member's region; a plan's moves go to a host of the target
region with room, and the actuator runs them as transactions.
"""

from __future__ import annotations

import time

from tropic.autopilot.base import Move, Plan, PolicyError, Snapshot
from tropic.errors import TropicError
from tropic.model.services import SERVICES
from tropic.sun.contract import Placement
from tropic.sun.planner import SunPlanner, moves_between


class SunPolicy:
    """The follow-the-sun plug-in for one service (a :class:`~tropic.autopilot.base.Policy`). The step is
    the snapshot's time of day; the leader is the planner's choice (kept here, reported in ``why``)."""

    name: str = "sun"

    def __init__(self, service: str, planner: SunPlanner) -> None:
        self.service = service if service.startswith("/") else f"{SERVICES}/{service}"
        self.planner = planner
        self.leader = ""

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        start = time.monotonic()
        service = snapshot.services.get(self.service)
        if service is None:
            raise PolicyError(f"sun: no service {self.service} in the snapshot", path=self.service)
        members = [snapshot.vms[m] for m in service.members if m in snapshot.vms]
        if not members:
            return Plan(policy=self.name, service=service.path, why=f"{service.path}: no member to place")
        stale = sorted(v.path for v in members if v.path in snapshot.stale or v.host in snapshot.stale)
        if stale:
            return Plan(
                policy=self.name,
                service=service.path,
                why=f"{service.path}: member(s) {', '.join(stale)} stale",
            )
        regions = [snapshot.hosts[v.host].region for v in members]
        unknown = sorted({r for r in regions if r not in self.planner.matrix.rtt_ms})
        if unknown:
            raise PolicyError(
                f"sun: {service.path}: region {unknown[0]} is not in the latency matrix", path=service.path
            )
        leader = regions.index(self.leader) if self.leader in regions else 0
        current = Placement(tuple(regions), leader)
        step = int((snapshot.at % 86_400) // self.planner.demand.step_s)
        try:
            target, _ = self.planner.decide(step, current)
        except TropicError as e:
            raise PolicyError(f"sun: {service.path}: {e.message}", path=service.path) from e
        moves = moves_between(current, target)
        if len(moves) > budget:
            return Plan(
                policy=self.name,
                service=service.path,
                why=f"{service.path}: {len(moves)} moves over the pass budget {budget}",
            )
        free = {
            h.path: h.memory_mib - sum(snapshot.vms[v].memory_mib for v in h.vms if v in snapshot.vms)
            for h in snapshot.hosts.values()
        }
        planned: list[Move] = []
        for src, dst in moves:
            vm = next(
                v
                for v, r in zip(members, regions, strict=True)
                if r == src and v.path not in {m.vm for m in planned}
            )
            hosts = sorted(
                (
                    h
                    for h in snapshot.hosts.values()
                    if h.region == dst
                    and h.powered
                    and not h.cordoned
                    and h.path not in snapshot.stale
                    and free[h.path] >= vm.memory_mib
                ),
                key=lambda h: (-free[h.path], h.path),
            )
            if not hosts:
                return Plan(
                    policy=self.name,
                    service=service.path,
                    why=f"{service.path}: no host in {dst} has room for {vm.path}",
                    solve_s=time.monotonic() - start,
                )
            free[hosts[0].path] -= vm.memory_mib
            planned.append(Move(vm=vm.path, dest=hosts[0].path, why=f"sun: {src} -> {dst}"))
        self.leader = target.members[target.leader]
        return Plan(
            policy=self.name,
            service=service.path,
            moves=tuple(planned),
            why=self.planner.last_why,
            solve_s=time.monotonic() - start,
        )


def make_sun(service: str = "", latency: str = "", demand: str = "", **options: float) -> SunPolicy:
    """``tropic serve --autopilot sun``: the planner on a matrix and a demand file (the defaults of
    ``tropic sun`` when not given); ``options`` are :class:`~tropic.sun.planner.SunConfig` fields."""
    from pathlib import Path

    from tropic.sun.planner import SunConfig
    from tropic.sun.run import SunSpec, load_inputs

    if not service:
        raise PolicyError("sun: the policy needs service=<name> (the service whose members follow the sun)")
    fields = set(SunConfig.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise PolicyError(f"sun: unknown option {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    config = SunConfig(**options)  # type: ignore[arg-type]
    spec = SunSpec(Path(latency) if latency else None, Path(demand) if demand else None, config=config)
    try:
        _, _, matrix, day = load_inputs(spec)
    except TropicError as e:
        raise PolicyError(f"sun: {e.message}") from e
    return SunPolicy(service, SunPlanner(matrix, day, config))
