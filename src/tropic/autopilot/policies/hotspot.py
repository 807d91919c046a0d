"""Hot-spot relief: move load off hosts whose predicted CPU demand is above a threshold.

A host is **hot** when the predicted demand of its VMs exceeds ``threshold x cpus`` (default 0.9). It
sheds the fewest VMs that bring it back under the threshold (one VM when one suffices: the smallest such;
otherwise the largest first), each to the least-loaded host that stays under ``headroom x cpus`` after
taking it (default 0.8) and has room for it: powered on, not cordoned, in the same region, memory within
``memory_mib``, vCPUs within ``cpus x cpu_overcommit``, and not in the failure domain of a VM sharing the
moving VM's ``anti-affinity`` label. Hosts and VMs whose sensors are stale are left alone (neither shed
nor chosen), as are VMs whose demand is unknown.

Units: ``gain`` is the overload removed, in cores above the thresholds; ``cost`` is
``migration_cost`` cores per GiB of memory moved (default 0.05: moving a 4 GiB VM costs 0.2 cores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from tropic.autopilot.base import HostState, Move, Plan, PolicyError, Snapshot, VMState

ANTI_AFFINITY = "anti-affinity"  # VMs sharing this label's value avoid sharing a failure domain


@dataclass
class _Load:
    host: HostState
    demand: float
    vcpus: int
    memory: int
    domains: dict[str, set[str]] = field(default_factory=dict)  # anti-affinity group -> domains in use


class HotspotRelief:
    """The hot-spot relief policy (see the module docstring)."""

    name = "hotspot"

    def __init__(self, threshold: float = 0.9, headroom: float = 0.8, migration_cost: float = 0.05) -> None:
        if not 0 < threshold <= 1:
            raise PolicyError(f"hotspot threshold {threshold} must be in (0, 1]")
        if not 0 < headroom <= threshold:
            raise PolicyError(
                f"hotspot headroom {headroom} must be in (0, threshold={threshold}]: "
                "a destination must stay cooler than a hot host"
            )
        self.threshold = threshold
        self.headroom = headroom
        self.migration_cost = migration_cost

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        started = time.perf_counter()
        loads = _loads(snapshot)
        moves: list[Move] = []
        gain = cost = 0.0
        hot = sorted(
            (
                p
                for p, ld in loads.items()
                if p not in snapshot.stale and ld.demand > self.threshold * ld.host.cpus
            ),
            key=lambda p: (-(loads[p].demand / max(loads[p].host.cpus, 1)), p),
        )
        unrelieved: list[str] = []
        for path in hot:
            src = loads[path]
            limit = self.threshold * src.host.cpus
            movable = [
                snapshot.vms[v]
                for v in src.host.vms
                if v in snapshot.vms and v not in snapshot.stale and snapshot.vms[v].demand is not None
            ]
            while src.demand > limit + 1e-9 and movable and len(moves) < budget:
                vm = _pick(movable, src.demand - limit)
                dest = self._destination(snapshot, loads, src, vm)
                movable.remove(vm)
                if dest is None:
                    continue
                d = vm.demand or 0.0
                relieved = min(d, src.demand - limit)
                was = src.demand / max(src.host.cpus, 1)
                _move(src, loads[dest], vm)
                moves.append(Move(vm.path, dest, f"{path} at {was:.0%} > {self.threshold:.0%} predicted"))
                gain += relieved
                cost += self.migration_cost * vm.memory_mib / 1024
            if src.demand > limit + 1e-9:
                unrelieved.append(path)
        if not hot:
            why = f"no host above {self.threshold:.0%} of its CPUs (predicted)"
        elif not moves:
            why = f"{len(hot)} hot host(s) but no VM can move under the headroom: {', '.join(hot)}"
        else:
            why = f"relieve {len(hot)} hot host(s) with {len(moves)} migration(s)"
            if unrelieved:
                why += f"; still hot: {', '.join(unrelieved)}"
        return Plan(
            policy=self.name,
            moves=tuple(moves),
            gain=gain,
            cost=cost,
            why=why,
            solve_s=time.perf_counter() - started,
        )

    def _destination(self, snap: Snapshot, loads: dict[str, _Load], src: _Load, vm: VMState) -> str | None:
        d = vm.demand or 0.0
        group = vm.labels.get(ANTI_AFFINITY)
        best: tuple[float, str] | None = None
        for path, ld in loads.items():
            h = ld.host
            if path == src.host.path or path in snap.stale or not h.powered or h.cordoned:
                continue
            if h.region != src.host.region:
                continue
            if ld.memory + vm.memory_mib > h.memory_mib or ld.vcpus + vm.vcpus > h.cpus * h.cpu_overcommit:
                continue
            if ld.demand + d > self.headroom * h.cpus:
                continue
            if (
                group
                and h.failure_domain
                and h.failure_domain in _domains_except(loads, group, vm.path, snap)
            ):
                continue
            key = ((ld.demand + d) / max(h.cpus, 1), path)
            if best is None or key < best:
                best = key
        return None if best is None else best[1]


def _loads(snap: Snapshot) -> dict[str, _Load]:
    out: dict[str, _Load] = {}
    for path, h in snap.hosts.items():
        ld = _Load(h, 0.0, 0, 0)
        for v in h.vms:
            vm = snap.vms.get(v)
            if vm is None:
                continue
            ld.demand += vm.demand or 0.0
            ld.vcpus += vm.vcpus
            ld.memory += vm.memory_mib
        out[path] = ld
    return out


def _domains_except(loads: dict[str, _Load], group: str, vm: str, snap: Snapshot) -> set[str]:
    """Failure domains of the hosts of the other VMs in anti-affinity ``group`` (as planned so far)."""
    out: set[str] = set()
    for ld in loads.values():
        for v in ld.host.vms:
            other = snap.vms.get(v)
            if other is not None and v != vm and other.labels.get(ANTI_AFFINITY) == group:
                out.add(ld.host.failure_domain)
    return out


def _pick(movable: list[VMState], excess: float) -> VMState:
    """The smallest VM whose demand covers ``excess``, else the largest (fewest moves, smallest ones)."""
    enough = [v for v in movable if (v.demand or 0.0) >= excess - 1e-9]
    if enough:
        return min(enough, key=lambda v: (v.demand or 0.0, v.memory_mib, v.path))
    return max(movable, key=lambda v: (v.demand or 0.0, -v.memory_mib, v.path))


def _move(src: _Load, dst: _Load, vm: VMState) -> None:
    d = vm.demand or 0.0
    src.demand -= d
    src.vcpus -= vm.vcpus
    src.memory -= vm.memory_mib
    src.host = _without(src.host, vm.path)
    dst.demand += d
    dst.vcpus += vm.vcpus
    dst.memory += vm.memory_mib
    dst.host = _with(dst.host, vm.path)


def _without(h: HostState, vm: str) -> HostState:
    return replace(h, vms=tuple(v for v in h.vms if v != vm))


def _with(h: HostState, vm: str) -> HostState:
    return replace(h, vms=(*h.vms, vm))
