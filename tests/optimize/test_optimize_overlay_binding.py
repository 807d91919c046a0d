"""Every overlay constraint kind and cost term changes the optimum on an instance where it binds.

Each test solves a small problem with and without one constraint: the unconstrained optimum must violate
it, and the constrained optimum must satisfy it at a strictly lower objective.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from tropic.optimize import (
    LatencyBound,
    LatencyMatrix,
    LatencyMetric,
    LatencyUtility,
    NodeUtility,
    Op,
    OverlayNode,
    OverlayProblem,
    RegionCap,
    RegionSpread,
    Requirement,
    SolverSettings,
    evaluate,
    psepr_problem,
    solve_overlay,
    solve_overlay_bruteforce,
)
from tropic.optimize.psepr import PseprNode

S = SolverSettings(time_limit_s=10)


def line_problem(
    scores: list[int], regions: list[str], positions: list[int], *, size: tuple[int, int] = (3, 3)
) -> OverlayProblem:
    """Nodes on a line (latency = distance + 1 ms), one fixed node at position 0, utility = score + short
    diameter + near the fixed node."""
    names = [f"n{i}" for i in range(len(scores))]
    nodes = tuple(
        OverlayNode(n, r, {"score": Fraction(s), "ok": Fraction(1)})
        for n, s, r in zip(names, scores, regions, strict=True)
    )
    everyone = [*names, "fixed"]
    pos = [*positions, 0]
    rows = tuple(
        tuple(Fraction(0) if i == j else Fraction(abs(pos[i] - pos[j]) + 1) for j in range(len(pos)))
        for i in range(len(pos))
    )
    return OverlayProblem(
        nodes=nodes,
        latency=LatencyMatrix(tuple(everyone), rows),
        min_size=size[0],
        max_size=size[1],
        utilities=(
            NodeUtility("score", Fraction(0), Fraction(10), 4, higher_is_better=True),
            LatencyUtility(LatencyMetric.DIAMETER, Fraction(0), Fraction(100), 1),
            LatencyUtility(LatencyMetric.FIXED_DISTANCE, Fraction(0), Fraction(100), 1),
        ),
        fixed=("fixed",),
    )


def assert_binds(loose: OverlayProblem, tight: OverlayProblem) -> None:
    free = solve_overlay(loose, S)
    bound = solve_overlay(tight, S)
    assert free.objective is not None and bound.objective is not None
    assert not evaluate(tight, free.chosen).feasible, "the constraint does not bind on this instance"
    assert evaluate(tight, bound.chosen).feasible
    assert bound.objective < free.objective
    assert bound.objective == solve_overlay_bruteforce(tight).objective


# Region a: the best nodes, spread out; region b: poor nodes, tightly clustered; n6: a poor node next to
# the fixed node.
BASE = line_problem(
    scores=[10, 9, 8, 3, 2, 1, 0],
    regions=["a", "a", "a", "b", "b", "b", "b"],
    positions=[10, 12, 14, 40, 41, 42, 2],
)


def test_node_requirement_binds() -> None:
    nodes = list(BASE.nodes)
    nodes[0] = OverlayNode("n0", "a", {"score": Fraction(10), "ok": Fraction(0)})
    loose = replace(BASE, nodes=tuple(nodes))
    assert_binds(loose, replace(loose, requirements=(Requirement("ok", Op.EQ, Fraction(1)),)))


def test_region_spread_binds() -> None:
    # 3 nodes, 2 groups: at most (3 - 1) // 2 + 1 = 2 per region, so one must come from region b.
    assert_binds(BASE, replace(BASE, groups=(RegionSpread(2),)))


def test_region_spread_limit_depends_on_the_overlay_size() -> None:
    spread = RegionSpread(4)
    assert [spread.limit(k) for k in range(6, 11)] == [2, 2, 2, 3, 3]  # PsEPR: ((Len - 1) // 4) + 1


def test_region_cap_binds() -> None:
    assert_binds(BASE, replace(BASE, groups=(RegionCap("a", 1),)))


def test_diameter_bound_binds() -> None:
    free = solve_overlay(BASE, S)
    diameter = evaluate(BASE, free.chosen).metrics["diameter"]
    assert_binds(BASE, replace(BASE, bounds=(LatencyBound(LatencyMetric.DIAMETER, diameter),)))


def test_fixed_distance_bound_binds() -> None:
    free = solve_overlay(BASE, S)
    distance = evaluate(BASE, free.chosen).metrics["fixed_distance"]
    assert_binds(BASE, replace(BASE, bounds=(LatencyBound(LatencyMetric.FIXED_DISTANCE, distance),)))


def test_size_bounds_bind() -> None:
    assert_binds(replace(BASE, min_size=1, max_size=6), replace(BASE, min_size=4, max_size=6))


def test_cost_of_adding_nodes_keeps_the_current_overlay() -> None:
    current = frozenset({"n3", "n4", "n5"})
    loose = replace(BASE, current=current)
    tight = replace(loose, cost_added=Fraction(1))
    assert solve_overlay(loose, S).evaluation.added  # type: ignore[union-attr]
    kept = solve_overlay(tight, S)
    assert kept.chosen == tuple(sorted(current))
    assert kept.objective == solve_overlay_bruteforce(tight).objective


def test_cost_of_removing_nodes_counts() -> None:
    loose = replace(BASE, current=frozenset({"n3", "n4", "n5"}), min_size=3, max_size=6)
    tight = replace(loose, cost_removed=Fraction(1, 5))
    assert solve_overlay(loose, S).evaluation.removed  # type: ignore[union-attr]
    assert not solve_overlay(tight, S).evaluation.removed  # type: ignore[union-attr]


# --- PsEPR's node constraint, exactly as the paper states it ------------------------------------------------
def psepr_node(name: str, **overrides: object) -> PseprNode:
    fields: dict[str, object] = {
        "name": name,
        "region": "europe",
        "alive": True,
        "available": True,
        "load": Fraction(1),
        "live_slices": 2,
        "cpuspeed_ghz": Fraction(3),
        "freecpu_pct": 80,
    }
    fields.update(overrides)
    return PseprNode(**fields)  # type: ignore[arg-type]


def test_psepr_node_constraint_thresholds() -> None:
    cases = {
        "ok": psepr_node("ok"),
        "dead": psepr_node("dead", alive=False),
        "busy": psepr_node("busy", load=Fraction(5)),
        "unavailable": psepr_node("unavailable", available=False),
        # cpuspeed * freecpu / 100 must be strictly greater than 1.5: 3 GHz * 50 % is exactly 1.5.
        "slow": psepr_node("slow", freecpu_pct=50),
        "fast-enough": psepr_node("fast-enough", freecpu_pct=51),
    }
    names = list(cases)
    lat = LatencyMatrix(
        tuple(names), tuple(tuple(Fraction(0 if a == b else 10) for b in names) for a in names)
    )
    problem = psepr_problem(list(cases.values()), lat)
    assert {n.name for n in problem.eligible()} == {"ok", "fast-enough"}
