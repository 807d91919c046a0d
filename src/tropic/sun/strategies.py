"""Three ways to place a leader-based service over the same day, measured with :mod:`tropic.sun.model`:

* ``static-single``: every member in the one region with the lowest mean perceived latency over the day
  (when a region holds fewer than ``members``, the rest go to its nearest regions);
* ``static-global``: the placement (members per region and leader) with the lowest mean over the whole
  day, fixed: the CP-SAT model of :mod:`tropic.sun.placement` on the day's total volumes, or every
  placement enumerated (:mod:`tropic.sun.bound`) when there are at most :data:`EXACT_STATIC_MAX`,
  whichever is better;
* ``dynamic``: the follow-the-sun planner (:class:`~tropic.sun.planner.SunPlanner`) deciding every
  ``decide_every_min``, starting from the static-global placement. Its moves go through ``actuate`` (the
  hook that runs them as transactions; without one they are taken as done); a refused move leaves the
  service where it was.

Per strategy: ``mean_ms``, ``p95_ms``, ``migrations`` (member moves), ``downtime_s`` (each move's
pre-copy downtime, plus ``election_s`` of write unavailability per leader change), and ``cost``: the
migrations' inter-region transfer priced at ``EGRESS_USD_PER_GIB`` (the member-hours are the same under
every strategy). ``reduction_vs_best_static`` is ``1 - dynamic / min(static means)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tropic.errors import ConfigError
from tropic.sun.bound import bound, estimate
from tropic.sun.contract import Demand, LatencyMatrix, Placement, StrategyDay
from tropic.sun.model import day_latency
from tropic.sun.placement import placement_of, solve
from tropic.sun.planner import SunConfig, SunPlanner, candidates, migration, moves_between

EXACT_STATIC_MAX = 2_000_000  # placements enumerated to prove the static-global optimum (a few seconds)
EGRESS_USD_PER_GIB = 0.02  # a typical public-cloud inter-region transfer price
# (step, current, target) -> the placement reached (the target when every move committed)
Actuate = Callable[[int, Placement, Placement], Placement]


def check_fit(matrix: LatencyMatrix, config: SunConfig) -> None:
    places = len(matrix.regions) * config.capacity
    if config.members > places:
        raise ConfigError(
            f"{config.members} members do not fit: {len(matrix.regions)} regions x capacity "
            f"{config.capacity} = {places} places"
        )


def _volumes(demand: Demand, steps: range) -> tuple[dict[str, float], dict[str, float]]:
    reads: dict[str, float] = {}
    writes: dict[str, float] = {}
    for k in steps:
        for client, rate in demand.rate[k].items():
            e = demand.attach[client]
            reads[e] = reads.get(e, 0.0) + rate * demand.step_s * demand.read_fraction
            writes[e] = writes.get(e, 0.0) + rate * demand.step_s * (1 - demand.read_fraction)
    return reads, writes


def _day(name: str, matrix: LatencyMatrix, demand: Demand, placements: list[Placement]) -> StrategyDay:
    lat = day_latency(matrix, demand, placements)
    return StrategyDay(
        strategy=name,
        mean_ms=lat.mean_ms,
        p95_ms=lat.p95_ms,
        migrations=0,
        downtime_s=0.0,
        cost=0.0,
        step_mean_ms=lat.step_mean_ms,
        placements=tuple(placements),
    )


def single_placement(matrix: LatencyMatrix, region: str, config: SunConfig) -> Placement:
    order = sorted(matrix.regions, key=lambda r: (r != region, matrix.rtt(region, r), r))
    members: list[str] = []
    for r in order:
        members += [r] * min(config.capacity, config.members - len(members))
        if len(members) == config.members:
            break
    return Placement(tuple(members), 0)


def static_single(matrix: LatencyMatrix, demand: Demand, config: SunConfig) -> StrategyDay:
    check_fit(matrix, config)
    steps = len(demand.rate)
    days = [
        _day("static-single", matrix, demand, [single_placement(matrix, r, config)] * steps)
        for r in matrix.regions
    ]
    return min(days, key=lambda d: (d.mean_ms, d.placements[0].members))


def static_global(matrix: LatencyMatrix, demand: Demand, config: SunConfig) -> StrategyDay:
    check_fit(matrix, config)
    reads, writes = _volumes(demand, range(len(demand.rate)))
    cand = candidates(matrix, set(reads), config.neighbours)
    solved = solve(
        matrix,
        reads,
        writes,
        members=config.members,
        capacity=config.capacity,
        regions=cand if len(cand) * config.capacity >= config.members else None,
        time_limit=max(config.time_limit, 20.0),
        workers=config.workers,
    )
    if solved is None:
        raise ConfigError("no placement satisfies the capacity")
    placement = placement_of(solved.counts, solved.leader, matrix.regions)
    day = _day("static-global", matrix, demand, [placement] * len(demand.rate))
    optimal = solved.optimal
    if estimate(len(matrix.regions), config.members) <= EXACT_STATIC_MAX:
        # CP-SAT searched the candidate regions under a time limit: enumerate every placement over every
        # region (tropic.sun.bound) and keep the better, so the baseline is the true static optimum
        exact = bound(matrix, demand, members=config.members, capacity=config.capacity).static_placement
        other = _day("static-global", matrix, demand, [exact] * len(demand.rate))
        day = other if other.mean_ms < day.mean_ms else day
        optimal = True
    day.extra["optimal"] = 1.0 if optimal else 0.0
    return day


def oracle_hourly(matrix: LatencyMatrix, demand: Demand, config: SunConfig) -> StrategyDay:
    """Not a strategy: the best placement for each hour of the *actual* demand, moved for free (no
    budget, no hysteresis, no migration time). No policy can do better at this hourly grain: it bounds
    what following the sun can gain on this demand."""
    check_fit(matrix, config)
    per_hour = max(1, round(3600 / demand.step_s))
    placements: list[Placement] = []
    for start in range(0, len(demand.rate), per_hour):
        steps = range(start, min(start + per_hour, len(demand.rate)))
        reads, writes = _volumes(demand, steps)
        solved = solve(
            matrix,
            reads,
            writes,
            members=config.members,
            capacity=config.capacity,
            regions=candidates(matrix, set(reads), config.neighbours),
            time_limit=config.time_limit,
            workers=config.workers,
        )
        if solved is None:
            raise ConfigError("no placement satisfies the capacity")
        placements += [placement_of(solved.counts, solved.leader, matrix.regions)] * len(steps)
    return _day("oracle-hourly", matrix, demand, placements)


@dataclass
class DynamicRun:
    placements: list[Placement] = field(default_factory=list)
    migrations: int = 0
    leader_changes: int = 0
    downtime_s: float = 0.0
    sent_mib: float = 0.0
    refused: int = 0
    decisions: list[str] = field(default_factory=list)


def dynamic(
    matrix: LatencyMatrix,
    demand: Demand,
    config: SunConfig,
    *,
    initial: Placement,
    actuate: Actuate | None = None,
    on_step: Callable[[int], None] | None = None,
) -> StrategyDay:
    """The follow-the-sun day: decide every ``decide_every_min``; a target takes effect ``lead`` steps
    after its decision (when its migrations have ended), through ``actuate``."""
    check_fit(matrix, config)
    planner = SunPlanner(matrix, demand, config)
    every = max(1, round(config.decide_every_min * 60 / demand.step_s))
    run = DynamicRun()
    current = initial
    pending: tuple[int, Placement] | None = None
    steps = len(demand.rate)
    for k in range(steps):
        if pending is not None and pending[0] == k:
            target = pending[1]
            pending = None
            reached = target if actuate is None else actuate(k, current, target)
            if reached != target:
                run.refused += 1
                run.decisions.append(f"step {k}: a move was refused; the service stays where it got to")
            moves = moves_between(current, reached)
            for s, d in moves:
                pc = migration(config, matrix, s, d)
                run.downtime_s += pc.downtime_s
                run.sent_mib += pc.sent_mib
            run.migrations += len(moves)
            if reached.members[reached.leader] != current.members[current.leader]:
                run.leader_changes += 1
                run.downtime_s += config.election_s
            planner.record(k, current, reached)
            current = reached
        run.placements.append(current)
        if pending is None and k % every == 0 and k + 1 < steps:
            target, lead = planner.decide(k, current)
            run.decisions.append(planner.last_why)
            if target != current and k + lead < steps:
                pending = (k + lead, target)
        if on_step is not None:
            on_step(k)
    day = _day("dynamic", matrix, demand, run.placements)
    solve_s = planner.solve_s or [0.0]
    return StrategyDay(
        strategy="dynamic",
        mean_ms=day.mean_ms,
        p95_ms=day.p95_ms,
        migrations=run.migrations,
        downtime_s=run.downtime_s,
        cost=run.sent_mib / 1024 * EGRESS_USD_PER_GIB,
        step_mean_ms=day.step_mean_ms,
        placements=day.placements,
        extra={
            "leader_changes": float(run.leader_changes),
            "refused": float(run.refused),
            "transferred_gib": run.sent_mib / 1024,
            "solve_s_max": max(solve_s),
        },
    )


def compare(
    matrix: LatencyMatrix,
    demand: Demand,
    config: SunConfig,
    *,
    actuate: Actuate | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[StrategyDay]:
    """The three strategies over the same day (static-single, static-global, dynamic)."""
    single = static_single(matrix, demand, config)
    glob = static_global(matrix, demand, config)
    dyn = dynamic(matrix, demand, config, initial=glob.placements[0], actuate=actuate, on_step=on_step)
    return [single, glob, dyn]


def best_static(days: list[StrategyDay]) -> float:
    return min(d.mean_ms for d in days if d.strategy.startswith("static"))


def reduction_vs_best_static(days: list[StrategyDay]) -> float:
    best = best_static(days)
    dyn = next(d for d in days if d.strategy == "dynamic")
    return 1.0 - dyn.mean_ms / best if best > 0 else 0.0


def hourly_regions(day: StrategyDay, demand: Demand) -> list[dict[str, int]]:
    """Members per region at the start of each hour."""
    per_hour = max(1, round(3600 / demand.step_s))
    out: list[dict[str, int]] = []
    for k in range(0, len(day.placements), per_hour):
        counts: dict[str, int] = {}
        for m in day.placements[k].members:
            counts[m] = counts.get(m, 0) + 1
        out.append(counts)
    return out


def to_dict(days: list[StrategyDay], demand: Demand) -> dict[str, object]:
    """The JSON report."""
    out: dict[str, object] = {}
    for d in days:
        lead = d.placements[0] if d.placements else Placement(())
        out[d.strategy] = {
            "mean_ms": round(d.mean_ms, 2),
            "p95_ms": round(d.p95_ms, 2),
            "migrations": d.migrations,
            "downtime_s": round(d.downtime_s, 3),
            "cost": round(d.cost, 4),
            "start": {
                "members": list(lead.members),
                "leader": lead.members[lead.leader] if lead.members else "",
            },
            "hourly_members": hourly_regions(d, demand),
            **{k: round(v, 4) for k, v in d.extra.items()},
        }
    out["reduction_vs_best_static"] = round(reduction_vs_best_static(days), 4)
    return out
