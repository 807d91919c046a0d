"""Follow the sun as an autopilot plug-in: :class:`SunPolicy` asks a :class:`RegionPlanner` (in tropic,
:class:`tropic.sun.planner.SunPlanner`: a CP-SAT model of where the members and the leader go, with
forecast, hysteresis, budget and anti-flap window) where a service's members should be, on the autopilot's
:class:`~tropic.autopilot.base.Snapshot`. The service's members are VMs on hosts, a host's region is its
member's region; a plan's moves go to a host of the target region with room, and the actuator runs them as
transactions.

The planner is typed structurally here: ``tropic.sun`` sits above the autopilot (it runs a controller and
a ZooKeeper ensemble), so the autopilot does not import it; ``tropic.sun.policy`` builds the plug-in and
registers it as ``sun`` in :data:`~tropic.autopilot.policies.POLICIES`.
"""

from __future__ import annotations

import time
from typing import Protocol

from tropic.autopilot.base import Move, Plan, PolicyError, Snapshot
from tropic.errors import TropicError
from tropic.model.services import SERVICES


class RegionPlanner(Protocol):
    """Where a leader-based service's members go: ``decide_regions(step, members, leader)`` answers the
    target (a region per member, the leader's index) for the step of the day (``step_s`` seconds each);
    ``last_why`` says why; ``knows(region)``: the region is in its latency matrix."""

    @property
    def step_s(self) -> int: ...

    @property
    def last_why(self) -> str: ...

    def knows(self, region: str) -> bool: ...

    def decide_regions(
        self, step: int, members: tuple[str, ...], leader: int
    ) -> tuple[tuple[str, ...], int]: ...


def region_moves(old: tuple[str, ...], new: tuple[str, ...]) -> list[tuple[str, str]]:
    """The member moves (source region, dest region) turning ``old`` into ``new`` (counts per region)."""
    a: dict[str, int] = {}
    b: dict[str, int] = {}
    for r in old:
        a[r] = a.get(r, 0) + 1
    for r in new:
        b[r] = b.get(r, 0) + 1
    out_ = [r for r in sorted(a) for _ in range(a[r] - b.get(r, 0))]
    in_ = [r for r in sorted(b) for _ in range(b[r] - a.get(r, 0))]
    return list(zip(out_, in_, strict=True))


class SunPolicy:
    """The follow-the-sun plug-in for one service (a :class:`~tropic.autopilot.base.Policy`). The step is
    the snapshot's time of day; the leader is the planner's choice (kept here, reported in ``why``)."""

    name: str = "sun"

    def __init__(self, service: str, planner: RegionPlanner) -> None:
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
        unknown = sorted({r for r in regions if not self.planner.knows(r)})
        if unknown:
            raise PolicyError(
                f"sun: {service.path}: region {unknown[0]} is not in the latency matrix", path=service.path
            )
        leader = regions.index(self.leader) if self.leader in regions else 0
        step = int((snapshot.at % 86_400) // self.planner.step_s)
        try:
            target, target_leader = self.planner.decide_regions(step, tuple(regions), leader)
        except TropicError as e:
            raise PolicyError(f"sun: {service.path}: {e.message}", path=service.path) from e
        moves = region_moves(tuple(regions), target)
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
        self.leader = target[target_leader]
        return Plan(
            policy=self.name,
            service=service.path,
            moves=tuple(planned),
            why=self.planner.last_why,
            solve_s=time.monotonic() - start,
        )
