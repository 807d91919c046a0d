"""Why a placement problem has no answer: the binding constraints and resources, in words.

First the counting arguments, which are exact and cheap: VMs larger than every host, total demand over
total capacity, a group whose members cannot fit in the domains its caps allow (e.g. "at most 2 per rack"
when every host is in one rack), a region limit below its VMs. When none of them explains it, each
constraint family is dropped in turn and the rest re-solved with CP-SAT: the families whose removal makes
the problem feasible are the binding ones.
"""

from __future__ import annotations

from collections import Counter

from tropic.optimize.base import SolverSettings, SolveStatus, make_solver, status_of
from tropic.optimize.placement import (
    AntiAffinity,
    GroupConstraint,
    Level,
    PlacementConstraint,
    PlacementProblem,
    RegionLimit,
    Spread,
)
from tropic.optimize.placement_cpsat import compile_placement
from tropic.optimize.placement_state import PlacementState

RELAX_TIME_S = 2.0  # per re-solve with one family dropped
MAX_GROUPS = 3  # groups named in one explanation; the rest are counted


def family(c: PlacementConstraint) -> str:
    """The constraint family ``c`` belongs to, as named in explanations."""
    if isinstance(c, AntiAffinity):
        return "anti-affinity (per host)"
    if isinstance(c, Spread):
        return f"spread (per {c.level.value.replace('_', ' ')})"
    return "region limit"


def _group_name(c: GroupConstraint) -> str:
    return f"group {c.vms[0]}.. of {len(c.vms)} VMs" if len(c.vms) > 1 else f"VM {c.vms[0]}"


def _host_caps(problem: PlacementProblem) -> dict[tuple[str, ...], int]:
    """For each VM set, the tightest per-host cap any constraint puts on it."""
    caps: dict[tuple[str, ...], int] = {}
    for c in problem.constraints:
        if not isinstance(c, RegionLimit) and c.level is Level.HOST:
            caps[c.vms] = min(caps.get(c.vms, c.cap), c.cap)
    return caps


def counting_reasons(problem: PlacementProblem) -> list[str]:
    """The reasons a counting argument proves (empty when none applies)."""
    out: list[str] = []
    hosts = problem.hosts
    if not hosts:
        return [f"there is no host for {len(problem.vms)} VMs"] if problem.vms else []
    max_cpu = max(h.vcpus for h in hosts)
    max_mem = max(h.memory_mib for h in hosts)
    for v in problem.vms:
        if not any(h.vcpus >= v.vcpus and h.memory_mib >= v.memory_mib for h in hosts):
            out.append(
                f"capacity: VM {v.name} ({v.vcpus} vCPUs/{v.memory_mib} MiB) fits on no host "
                f"(largest {max_cpu} vCPUs, {max_mem} MiB)"
            )
    for what, unit, demand, supply in (
        ("vCPUs", "", sum(v.vcpus for v in problem.vms), sum(h.vcpus for h in hosts)),
        ("memory", " MiB", sum(v.memory_mib for v in problem.vms), sum(h.memory_mib for h in hosts)),
    ):
        if demand > supply:
            out.append(
                f"capacity: the VMs need {demand}{unit} {what}, the {len(hosts)} hosts have {supply}{unit}"
            )
    host_caps = _host_caps(problem)
    groups: list[str] = []
    for c in problem.constraints:
        if isinstance(c, RegionLimit):
            continue
        domains: dict[str, int] = Counter(c.level.domain_of(h) for h in hosts)  # domain -> hosts in it
        per_host = host_caps.get(c.vms, len(c.vms))
        most = sum(min(c.cap, n * per_host) for n in domains.values())
        if most < len(c.vms):
            level = c.level.value.replace("_", " ")
            cap = f"at most {c.cap} per {level}"
            if c.level is not Level.HOST and per_host < c.cap:
                cap += f" and {per_host} per host"
            sizes = ", ".join(f"{d} ({n} hosts)" for d, n in sorted(domains.items())[:4])
            more = "" if len(domains) <= 4 else f" and {len(domains) - 4} more"
            groups.append(
                f"{family(c)}: {_group_name(c)} allows {cap}; the {len(hosts)} hosts form {len(domains)} "
                f"{level}(s) [{sizes}{more}], so at most {most} of them can be placed"
            )
    out += groups[:MAX_GROUPS]
    if len(groups) > MAX_GROUPS:
        out.append(f"and {len(groups) - MAX_GROUPS} more group(s) like these")
    limits: dict[str, int] = {}
    for c in problem.constraints:
        if isinstance(c, RegionLimit) and c.max_vms is not None:
            limits[c.region] = min(limits.get(c.region, c.max_vms), c.max_vms)
    regions = {h.region for h in hosts}
    room = sum(limits.get(r, len(problem.vms)) for r in regions)
    if room < len(problem.vms):
        out.append(
            f"region limit: the regions' VM limits allow {room} VMs in all, {len(problem.vms)} to place"
        )
    return out


def feasible(problem: PlacementProblem, time_limit_s: float = RELAX_TIME_S) -> bool | None:
    """Does ``problem`` have a placement? None when CP-SAT cannot tell within the time limit."""
    state = PlacementState(problem)
    compiled = compile_placement(state, list(range(len(problem.vms))), list(range(len(problem.hosts))))
    status = status_of(make_solver(SolverSettings(time_limit_s=time_limit_s)).solve(compiled.model))
    if status is SolveStatus.UNKNOWN:
        return None
    return status is not SolveStatus.INFEASIBLE


def binding_families(problem: PlacementProblem, time_limit_s: float = RELAX_TIME_S) -> list[str]:
    """The constraint families whose removal alone makes ``problem`` feasible."""
    families = sorted({family(c) for c in problem.constraints})
    out: list[str] = []
    for f in families:
        kept = tuple(c for c in problem.constraints if family(c) != f)
        relaxed = PlacementProblem(problem.hosts, problem.vms, kept, problem.objective)
        if feasible(relaxed, time_limit_s):
            out.append(f)
    return out


def explain(problem: PlacementProblem, time_limit_s: float = RELAX_TIME_S) -> list[str]:
    """Why ``problem`` (known infeasible) has no placement: one sentence per binding constraint."""
    reasons = counting_reasons(problem)
    if reasons:
        return reasons
    families = binding_families(problem, time_limit_s)
    if len(families) == 1:
        return [f"{families[0]}: without these constraints the VMs fit; with them they do not"]
    if families:
        return [f"each of {', '.join(families)} alone makes it infeasible (dropping any one of them helps)"]
    every = sorted({family(c) for c in problem.constraints})
    if every:
        return [f"capacity together with {', '.join(every)}: no single family alone is to blame"]
    return ["capacity: the VMs do not pack onto the hosts (bin packing, every host too full somewhere)"]
