"""The follow-the-sun placement as a CP-SAT model: how many members in each region and which region
leads, minimising the demand-weighted perceived latency of :mod:`tropic.sun.model` plus the migration
cost, under capacity, a migration budget and the hysteresis's frozen regions.

Variables, per region ``r``: ``x[r]`` members (0..capacity, summing to ``n``), ``y[r] = x[r] >= 1``,
``t[r] = x[r] >= 2`` (the region has a follower), ``lead[r]`` (exactly one, in a region with a member).
Per entry region ``e`` of the clients: ``a[e, r]``, the client's nearest member region (one; a region
with a member; no region strictly nearer may hold one), ``fwd[e]`` (``>= rtt(r, L)`` when the client
uses ``r`` and ``L`` leads; the intra-region round trip in the leader's region when it has a follower).
Quorum: ``u[L, k]`` says the leader in ``L`` has its majority once the followers of the ``k`` regions
nearest to ``L`` ack (enforced only when the members of those regions number ``q`` or more, the leader
included); ``quorum = sum u[L, k] x rtt(L, r_k)``.

Objective (integers: ms x 10, volumes scaled): ``sum_e reads[e] x rtt(e, a) + writes[e] x (rtt(e, a) +
fwd[e] + quorum)`` + ``move_cost x sum max(0, x[r] - current[r])`` + ``leader_cost`` when the leader's
region changes. The member moves are at most ``budget``; ``hold_up`` regions may not lose members and
``hold_down`` regions may not gain any (the anti-flap window).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ortools.sat.python import cp_model

from tropic.errors import ConfigError
from tropic.sun.contract import LatencyMatrix, Placement

SCALE_MS = 10  # 0.1 ms resolution
VOLUME_UNITS = 10_000  # the horizon's volume is scaled to this many units


@dataclass(frozen=True, slots=True)
class Solved:
    counts: dict[str, int]
    leader: str
    objective: float  # latency cost + migration cost, in request-ms (the volumes' unit)
    latency: float  # request-ms
    moves: int
    optimal: bool


def placement_of(counts: Mapping[str, int], leader: str, order: tuple[str, ...]) -> Placement:
    """A :class:`Placement` from member counts (the leader first, then the regions in ``order``)."""
    members = [leader] + [r for r in order for _ in range(counts.get(r, 0) - (1 if r == leader else 0))]
    return Placement(members=tuple(members), leader=0)


def counts_of(placement: Placement) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in placement.members:
        out[m] = out.get(m, 0) + 1
    return out


def solve(
    matrix: LatencyMatrix,
    reads: Mapping[str, float],
    writes: Mapping[str, float],
    *,
    members: int,
    capacity: int,
    current: Mapping[str, int] | None = None,
    current_leader: str = "",
    move_cost: float = 0.0,
    leader_cost: float = 0.0,
    budget: int | None = None,
    hold_up: frozenset[str] = frozenset(),
    hold_down: frozenset[str] = frozenset(),
    regions: tuple[str, ...] | None = None,
    time_limit: float = 5.0,
    workers: int = 2,
) -> Solved | None:
    """The best placement for the given read and write volumes per entry region (None: infeasible)."""
    cand = regions or matrix.regions
    if members < 1:
        raise ConfigError(f"sun: members must be >= 1, got {members}")
    if members > len(cand) * capacity:
        raise ConfigError(
            f"sun: {members} members do not fit {len(cand)} regions x capacity {capacity} "
            f"({len(cand) * capacity} places)"
        )
    cur = {r: int(v) for r, v in (current or {}).items() if v}
    entries = sorted({e for e, v in reads.items() if v > 0} | {e for e, v in writes.items() if v > 0})
    total = sum(reads.values()) + sum(writes.values())
    unit = VOLUME_UNITS / total if total > 0 else 1.0
    rd = {e: round(reads.get(e, 0.0) * unit) for e in entries}
    wr = {e: round(writes.get(e, 0.0) * unit) for e in entries}
    wsum = sum(wr.values())
    ms = {(a, b): round(matrix.rtt(a, b) * SCALE_MS) for a in set(cand) | set(entries) for b in cand}
    q = members // 2 + 1

    m = cp_model.CpModel()
    x = {r: m.new_int_var(0, capacity, f"x_{r}") for r in cand}
    y = {r: m.new_bool_var(f"y_{r}") for r in cand}
    t = {r: m.new_bool_var(f"t_{r}") for r in cand}
    lead = {r: m.new_bool_var(f"lead_{r}") for r in cand}
    m.add(sum(x.values()) == members)
    m.add_exactly_one(lead.values())
    for r in cand:
        m.add(x[r] >= y[r])
        m.add(x[r] <= capacity * y[r])
        m.add(x[r] <= 1 + (capacity - 1) * t[r])
        m.add_implication(lead[r], y[r])
        if r in hold_up:
            m.add(x[r] >= cur.get(r, 0))
        if r in hold_down:
            m.add(x[r] <= cur.get(r, 0))
    cost_terms: list[cp_model.LinearExprT] = []
    big = max(ms.values(), default=0)
    for e in entries:
        a = {r: m.new_bool_var(f"a_{e}_{r}") for r in cand}
        m.add_exactly_one(a.values())
        for r in cand:
            m.add_implication(a[r], y[r])
            for r2 in cand:
                if ms[(e, r2)] < ms[(e, r)]:
                    m.add_bool_or([a[r].negated(), y[r2].negated()])
        access = sum(ms[(e, r)] * a[r] for r in cand)
        cost_terms.append((rd[e] + wr[e]) * access)
        if wr[e] and members > 1:
            fwd = m.new_int_var(0, big, f"fwd_{e}")
            for lr in cand:
                for r in cand:
                    if r != lr and ms[(r, lr)]:
                        m.add(fwd >= ms[(r, lr)] * (a[r] + lead[lr] - 1))
                if ms[(lr, lr)]:
                    m.add(fwd >= ms[(lr, lr)] * (a[lr] + lead[lr] + t[lr] - 2))
            cost_terms.append(wr[e] * fwd)
    if wsum and q > 1:
        quorum = m.new_int_var(0, big, "quorum")
        for lr in cand:
            order = sorted(cand, key=lambda r: (ms[(lr, r)], r))
            u = [m.new_bool_var(f"u_{lr}_{k}") for k in range(len(order))]
            m.add(sum(u) == 1).only_enforce_if(lead[lr])
            m.add(sum(u) == 0).only_enforce_if(lead[lr].negated())
            for k, uk in enumerate(u):
                m.add(sum(x[r] for r in order[: k + 1]) >= q).only_enforce_if(uk)
            m.add(quorum >= sum(ms[(lr, r)] * uk for r, uk in zip(order, u, strict=True)))
        cost_terms.append(wsum * quorum)
    moves = []
    for r in cand:
        mv = m.new_int_var(0, capacity, f"mv_{r}")
        m.add(mv >= x[r] - cur.get(r, 0))
        moves.append(mv)
    if budget is not None:
        m.add(sum(moves) <= max(0, budget))
    per_move = round(move_cost * unit * SCALE_MS)
    per_leader = round(leader_cost * unit * SCALE_MS)
    if per_move:
        cost_terms.append(per_move * sum(moves))
    if per_leader and current_leader in lead:
        cost_terms.append(per_leader * (1 - lead[current_leader]))
    m.minimize(sum(cost_terms))
    # A feasible start: the current placement when it fits, else every member in the busiest entry region.
    start = dict(cur) if sum(cur.values()) == members and set(cur) <= set(cand) else {}
    if not start:
        busiest = max(entries, key=lambda e: rd[e] + wr[e]) if entries else cand[0]
        home = busiest if busiest in x else cand[0]
        start = {home: min(members, capacity)}
        rest = members - start[home]
        for r in cand:
            if rest <= 0:
                break
            if r not in start:
                start[r] = min(capacity, rest)
                rest -= start[r]
    for r in cand:
        m.add_hint(x[r], start.get(r, 0))
    hint_leader = current_leader if current_leader in start else max(start, key=lambda r: start[r])
    for r in cand:
        m.add_hint(lead[r], r == hint_leader)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = 0
    solver.parameters.cp_model_probing_level = 0  # probing dominates the solve time of these models
    solver.parameters.log_search_progress = bool(__import__("os").environ.get("SUN_LOG"))
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if status == cp_model.INFEASIBLE:
            return None
        # No answer within the time limit: improve the start (the current placement when it fits) instead.
        counts = {r: v for r, v in start.items() if v}
        leader = hint_leader
    else:
        counts = {r: int(solver.value(x[r])) for r in cand if solver.value(x[r])}
        leader = next(r for r in cand if solver.value(lead[r]))
    if status != cp_model.OPTIMAL:
        counts, leader = polish(
            matrix,
            reads,
            writes,
            counts,
            leader,
            capacity=capacity,
            regions=cand,
            current=cur,
            budget=budget,
            hold_up=hold_up,
            hold_down=hold_down,
        )
        after = {r: counts.get(r, 0) for r in cand}
        nmoves_polished = sum(max(0, v - cur.get(r, 0)) for r, v in after.items())
        mig = move_cost * nmoves_polished + (
            leader_cost if current_leader and leader != current_leader else 0.0
        )
        lat = volume_cost(matrix, reads, writes, placement_of(counts, leader, matrix.regions))
        return Solved(counts, leader, lat + mig, lat, nmoves_polished, False)
    nmoves = sum(int(solver.value(v)) for v in moves)
    obj = solver.objective_value / (unit * SCALE_MS)
    mig = (move_cost * nmoves) + (leader_cost if current_leader and leader != current_leader else 0.0)
    return Solved(counts, leader, obj, obj - mig, nmoves, status == cp_model.OPTIMAL)


def volume_cost(
    matrix: LatencyMatrix, reads: Mapping[str, float], writes: Mapping[str, float], placement: Placement
) -> float:
    """Request-ms of the volumes under ``placement``, by the exact model of :mod:`tropic.sun.model`."""
    from tropic.sun.model import MODEL

    total = 0.0
    for e in set(reads) | set(writes):
        r, w = reads.get(e, 0.0), writes.get(e, 0.0)
        if r:
            total += r * MODEL.read_ms(matrix, placement, e)
        if w:
            total += w * MODEL.write_ms(matrix, placement, e)
    return total


def polish(
    matrix: LatencyMatrix,
    reads: Mapping[str, float],
    writes: Mapping[str, float],
    counts: Mapping[str, int],
    leader: str,
    *,
    capacity: int,
    regions: tuple[str, ...],
    current: Mapping[str, int] | None = None,
    budget: int | None = None,
    hold_up: frozenset[str] = frozenset(),
    hold_down: frozenset[str] = frozenset(),
) -> tuple[dict[str, int], str]:
    """Improve a solver's answer (one taken before its time limit) by moving one member to another region
    or the leader to another member's region while the exact cost falls, under the same constraints."""
    cur = dict(current or {})

    def allowed(c: Mapping[str, int]) -> bool:
        if any(v > capacity for v in c.values()):
            return False
        if any(c.get(r, 0) < cur.get(r, 0) for r in hold_up) or any(
            c.get(r, 0) > cur.get(r, 0) for r in hold_down
        ):
            return False
        moves = sum(max(0, v - cur.get(r, 0)) for r, v in c.items())
        return budget is None or moves <= budget

    best_c, best_l = dict(counts), leader
    best = volume_cost(matrix, reads, writes, placement_of(best_c, best_l, matrix.regions))
    improved = True
    while improved:
        improved = False
        options: list[tuple[dict[str, int], str]] = [(best_c, r) for r in best_c if r != best_l]
        for src in list(best_c):
            for dst in regions:
                if dst == src:
                    continue
                c = dict(best_c)
                c[src] -= 1
                if not c[src]:
                    del c[src]
                c[dst] = c.get(dst, 0) + 1
                for lead_r in {best_l if best_l in c else dst, dst}:
                    options.append((c, lead_r))
        for c, lead_r in options:
            if not allowed(c):
                continue
            cost = volume_cost(matrix, reads, writes, placement_of(c, lead_r, matrix.regions))
            if cost < best - 1e-9:
                best_c, best_l, best, improved = c, lead_r, cost, True
    return best_c, best_l
