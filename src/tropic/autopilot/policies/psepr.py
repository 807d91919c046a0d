"""Rhizoma's PsEPR overlay as a managed service: which candidate hosts should run a member, from their
current load, with the PsEPR CP-SAT formulation of :mod:`tropic.optimize.psepr` (solved exactly by
:func:`tropic.optimize.overlay_cpsat.solve_overlay`).

Each candidate host becomes a PsEPR node: **alive** = powered, not stale and every VM's demand known;
**available** = not cordoned; **load** = the predicted demand of its VMs in cores (Rhizoma's load average);
**live slices** = its VMs; **CPU speed** = its ``cpuspeed_ghz`` label (default 2.4 GHz); **free CPU** =
the share of its CPUs the demand leaves. Latency between two hosts is the round-trip time between their
regions (:class:`PseprConfig`). The overlay size is the service's ``min_members..max_members``; choosing
a host outside the current overlay costs 0.012 (the paper's cost). The answer becomes one
:class:`~tropic.autopilot.base.SpawnRequest` per host added and a destroy of the member on each host
removed; ``gain`` is the utility gained (PsEPR utility units, 0..1) and ``cost`` the adding cost.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from tropic.autopilot.base import Plan, PolicyError, ServiceState, Snapshot, SpawnRequest
from tropic.autopilot.fleet import read_services
from tropic.errors import TropicError
from tropic.model.services import SERVICES
from tropic.optimize.base import SolverSettings, SolveStatus
from tropic.optimize.overlay import LatencyMatrix, OverlayProblem, evaluate
from tropic.optimize.overlay_cpsat import solve_overlay
from tropic.optimize.psepr import PseprNode, psepr_problem

DEFAULT_CPU_GHZ = Fraction(24, 10)
CPU_SPEED_LABEL = "cpuspeed_ghz"


@dataclass(frozen=True)
class PseprConfig:
    """``same_region_ms``/``other_region_ms``: round-trip times between hosts of one region and of two
    regions, unless ``region_rtt_ms`` (``{"a|b": ms}``, either order) gives the pair."""

    same_region_ms: float = 2.0
    other_region_ms: float = 100.0
    region_rtt_ms: Mapping[str, float] = field(default_factory=dict)
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        values = [("same_region_ms", self.same_region_ms), ("other_region_ms", self.other_region_ms)]
        values += [(f"region_rtt_ms[{k!r}]", v) for k, v in dict(self.region_rtt_ms).items()]
        for name, value in values:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise PolicyError(f"psepr: {name} must be a non-negative number of ms, got {value!r}")

    def rtt(self, a: str, b: str) -> Fraction:
        value = self.region_rtt_ms.get(f"{a}|{b}", self.region_rtt_ms.get(f"{b}|{a}"))
        if value is None:
            value = self.same_region_ms if a == b else self.other_region_ms
        return Fraction(str(value))


def candidates_of(snapshot: Snapshot, service: ServiceState) -> list[str]:
    """The candidate host paths of ``service`` in ``snapshot`` (listed ones, or its region scope)."""
    if service.candidates:
        return [h for h in service.candidates if h in snapshot.hosts]
    return sorted(h.path for h in snapshot.hosts.values() if not service.region or h.region == service.region)


def _node(snapshot: Snapshot, path: str) -> PseprNode:
    host = snapshot.hosts[path]
    vms = [snapshot.vms[v] for v in host.vms if v in snapshot.vms]
    known = all(v.demand is not None and v.path not in snapshot.stale for v in vms)
    demand = sum(v.demand or 0.0 for v in vms)
    try:
        speed = Fraction(host.labels.get(CPU_SPEED_LABEL, "")) if CPU_SPEED_LABEL in host.labels else None
    except ValueError:
        raise PolicyError(f"psepr: host {path}: label {CPU_SPEED_LABEL} is not a number", path=path) from None
    free = max(0, min(100, math.floor(100 * (1 - demand / host.cpus)))) if host.cpus else 0
    return PseprNode(
        name=path,
        region=host.region,
        alive=host.powered and path not in snapshot.stale and known,
        available=not host.cordoned,
        load=Fraction(round(demand * 100), 100),
        live_slices=len(vms),
        cpuspeed_ghz=speed if speed is not None else DEFAULT_CPU_GHZ,
        freecpu_pct=free,
    )


def member_hosts(snapshot: Snapshot, service: ServiceState) -> dict[str, str]:
    """Host path -> member VM path of the service's members present in ``snapshot``."""
    return {snapshot.vms[m].host: m for m in service.members if m in snapshot.vms}


def overlay_problem(snapshot: Snapshot, service: ServiceState, config: PseprConfig) -> OverlayProblem:
    """The PsEPR problem of ``service`` on ``snapshot`` (see the module docstring)."""
    hosts = candidates_of(snapshot, service)
    if not hosts:
        raise PolicyError(f"psepr: service {service.path} has no candidate host", path=service.path)
    regions = [snapshot.hosts[h].region for h in hosts]
    rows = tuple(
        tuple(Fraction(0) if a == b else config.rtt(ra, rb) for b, rb in zip(hosts, regions, strict=True))
        for a, ra in zip(hosts, regions, strict=True)
    )
    latency = LatencyMatrix(tuple(hosts), rows)
    current = set(member_hosts(snapshot, service)) & set(hosts)
    problem = psepr_problem([_node(snapshot, h) for h in hosts], latency, current=current)
    if service.min_members < 1 or service.max_members < service.min_members:
        raise PolicyError(
            f"psepr: service {service.path}: need 1 <= min_members <= max_members, got "
            f"{service.min_members}..{service.max_members}",
            path=service.path,
        )
    return dataclasses.replace(problem, min_size=service.min_members, max_size=service.max_members)


def member_name(service: ServiceState, host: str) -> str:
    """The name of the member spawned on ``host``: ``<service>-<region>-<host>`` cut to fit a VM name
    (hosts of two regions may share a name, and a member's volume is named after it)."""
    parts = host.split("/")
    where = "-".join(parts[2:]) if len(parts) > 3 else parts[-1]
    name = f"{service.path.rsplit('/', 1)[1]}-{where}"
    return name[:59].rstrip("-")


class PseprPolicy:
    """Keep one PsEPR service at its optimum (a :class:`~tropic.autopilot.base.Policy`)."""

    name: str = "psepr"

    def __init__(self, service: str, config: PseprConfig | None = None) -> None:
        self.service = service if service.startswith("/") else f"{SERVICES}/{service}"
        self.config = config or PseprConfig()

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        start = time.monotonic()
        service = snapshot.services.get(self.service)
        if service is None:
            raise PolicyError(f"psepr: no service {self.service} in the snapshot", path=self.service)
        if not time_limit > 0:
            raise PolicyError(f"psepr: the time limit must be positive, got {time_limit}")
        members = member_hosts(snapshot, service)
        stale = sorted(h for h, m in members.items() if h in snapshot.stale or m in snapshot.stale)
        if stale:
            return Plan(
                policy=self.name,
                service=service.path,
                why=f"{service.path}: member host(s) {', '.join(stale)} stale; the service is left as it is",
            )
        problem = overlay_problem(snapshot, service, self.config)
        settings = SolverSettings(time_limit_s=time_limit, workers=self.config.workers, seed=self.config.seed)
        try:
            solution = solve_overlay(problem, settings)
        except TropicError as e:
            raise PolicyError(f"psepr: {service.path}: {e.message}", path=service.path) from e
        elapsed = time.monotonic() - start
        if solution.evaluation is None:
            why = (
                f"{service.path}: no overlay satisfies the PsEPR constraints"
                if solution.status is SolveStatus.INFEASIBLE
                else f"{service.path}: timed out after {elapsed:.2f} s; the service is left as it is"
            )
            return Plan(policy=self.name, service=service.path, why=why, solve_s=elapsed)
        best = solution.evaluation
        now = evaluate(problem, sorted(problem.current))
        gain = best.utility - (now.utility if now.feasible else Fraction(0))
        added, removed = sorted(best.added), sorted(best.removed)
        extra = [h for h in members if h not in problem.latency]  # members off the candidate list
        if not added and not removed and not extra:
            return Plan(
                policy=self.name,
                service=service.path,
                why=f"{service.path}: the overlay is at its optimum ({len(members)} members)",
                solve_s=elapsed,
            )
        spawns = tuple(
            SpawnRequest(
                name=member_name(service, h),
                host=h,
                image=service.image,
                vcpus=service.vcpus,
                memory_mib=service.memory_mib,
                why=f"psepr: {h} joins {service.path}",
            )
            for h in added
        )
        destroys = tuple(members[h] for h in [*removed, *sorted(extra)])
        if len(spawns) + len(destroys) > budget:
            return Plan(
                policy=self.name,
                service=service.path,
                why=f"{service.path}: the optimum needs {len(spawns)} spawns and {len(destroys)} destroys, "
                f"over the budget of {budget}",
                solve_s=elapsed,
            )
        return Plan(
            policy=self.name,
            spawns=spawns,
            destroys=destroys,
            gain=float(gain),
            cost=float(best.cost),
            why=(
                f"{service.path}: overlay utility {float(now.utility) if now.feasible else 0:.4f} -> "
                f"{float(best.utility):.4f}; add {', '.join(added) or 'none'}; remove "
                f"{', '.join([*removed, *extra]) or 'none'} ({solution.status.value}, {elapsed:.2f} s)"
            ),
            solve_s=elapsed,
            service=service.path,
        )


def make_psepr(service: str, **options: object) -> PseprPolicy:
    """Build the policy for ``service`` from configuration options; an unknown one is a PolicyError."""
    known = {f.name for f in dataclasses.fields(PseprConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise PolicyError(
            f"psepr: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return PseprPolicy(service, PseprConfig(**options))  # type: ignore[arg-type]


__all__ = ["PseprConfig", "PseprPolicy", "make_psepr", "read_services"]
