"""The CP-SAT overlay model is exact: its optimum equals the exhaustive optimum, to the last digit."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    SolveStatus,
    evaluate,
    generate_psepr,
    solve_overlay,
    solve_overlay_bruteforce,
)

SETTINGS = SolverSettings(time_limit_s=20)


def assert_same_optimum(problem: OverlayProblem) -> SolveStatus:
    cp = solve_overlay(problem, SETTINGS)
    bf = solve_overlay_bruteforce(problem)
    assert cp.status is bf.status, (cp.status, bf.status)
    assert cp.objective == bf.objective  # exact Fractions: no tolerance needed
    if cp.evaluation is not None:
        # The CP-SAT answer, re-scored from scratch, is feasible and worth exactly what it claims.
        again = evaluate(problem, cp.chosen)
        assert again.feasible, again.violations
        assert again.objective == cp.objective
    return cp.status


def test_psepr_cpsat_equals_bruteforce_on_50_random_instances() -> None:
    statuses = [assert_same_optimum(generate_psepr(10 + seed % 5, seed).problem) for seed in range(50)]
    # The instances must exercise the optimiser, not only refute infeasible inputs.
    assert statuses.count(SolveStatus.OPTIMAL) >= 40


def test_psepr_tie_free_answer_is_the_same_node_set() -> None:
    inst = generate_psepr(12, 7)
    cp = solve_overlay(inst.problem, SETTINGS)
    bf = solve_overlay_bruteforce(inst.problem)
    assert cp.chosen == bf.chosen


def test_cpsat_reports_infeasible_like_bruteforce() -> None:
    inst = generate_psepr(12, 1, diameter_max_ms=Fraction(1))
    assert solve_overlay(inst.problem, SETTINGS).status is SolveStatus.INFEASIBLE
    assert solve_overlay_bruteforce(inst.problem).status is SolveStatus.INFEASIBLE


# --- random declarative problems beyond PsEPR: every term kind, odd ranges, removal costs ------------------
@st.composite
def overlay_problems(draw: st.DrawFn) -> OverlayProblem:
    n = draw(st.integers(3, 9))
    regions = ["a", "b", "c"][: draw(st.integers(1, 3))]
    fixed = [f"f{i}" for i in range(draw(st.integers(0, 2)))]
    names = [f"n{i}" for i in range(n)]
    decimals = st.integers(0, 400).map(lambda v: Fraction(v, 10))
    nodes = tuple(
        OverlayNode(
            name,
            draw(st.sampled_from(regions)),
            {
                "p": draw(decimals),
                "q": Fraction(draw(st.integers(0, 12))),
                "ok": Fraction(draw(st.integers(0, 5))),
            },
        )
        for name in names
    )
    everyone = names + fixed
    rows = [[Fraction(0)] * len(everyone) for _ in everyone]
    for i in range(len(everyone)):
        for j in range(i + 1, len(everyone)):
            rows[i][j] = rows[j][i] = Fraction(draw(st.integers(1, 3000)), draw(st.sampled_from([1, 4, 10])))
    lo_size = draw(st.integers(1, 3))
    hi_size = draw(st.integers(lo_size, min(n, lo_size + 3)))
    utilities: list[NodeUtility | LatencyUtility] = [
        NodeUtility(
            "p",
            Fraction(draw(st.integers(0, 5))),
            Fraction(draw(st.integers(6, 40))),
            draw(st.integers(0, 4)),
            draw(st.booleans()),
        ),
        NodeUtility("q", Fraction(1), Fraction(9, 2), draw(st.integers(1, 3)), draw(st.booleans())),
        LatencyUtility(
            LatencyMetric.DIAMETER, Fraction(draw(st.integers(0, 50))), Fraction(400), draw(st.integers(0, 3))
        ),
        LatencyUtility(
            LatencyMetric.FIXED_DISTANCE,
            Fraction(0),
            Fraction(draw(st.integers(50, 300))),
            draw(st.integers(0, 3)),
        ),
    ]
    groups: list[RegionSpread | RegionCap] = []
    if draw(st.booleans()):
        groups.append(RegionSpread(draw(st.integers(1, 3))))
    if draw(st.booleans()):
        groups.append(RegionCap(draw(st.sampled_from(regions)), draw(st.integers(0, 2))))
    bounds = []
    if draw(st.booleans()):
        bounds.append(LatencyBound(LatencyMetric.DIAMETER, Fraction(draw(st.integers(50, 300)))))
    if fixed and draw(st.booleans()):
        bounds.append(LatencyBound(LatencyMetric.FIXED_DISTANCE, Fraction(draw(st.integers(20, 200)))))
    return OverlayProblem(
        nodes=nodes,
        latency=LatencyMatrix(tuple(everyone), tuple(tuple(r) for r in rows)),
        min_size=lo_size,
        max_size=hi_size,
        utilities=tuple(utilities),
        requirements=(Requirement("ok", Op.GE, Fraction(1)),) if draw(st.booleans()) else (),
        groups=tuple(groups),
        bounds=tuple(bounds),
        fixed=tuple(fixed),
        current=frozenset(draw(st.sets(st.sampled_from(names)))),
        cost_added=Fraction(draw(st.integers(0, 30)), 1000),
        cost_removed=Fraction(draw(st.integers(0, 30)), 700),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overlay_problems())
def test_any_declarative_overlay_problem_matches_bruteforce(problem: OverlayProblem) -> None:
    assert_same_optimum(problem)


def test_bruteforce_refuses_large_problems() -> None:
    from tropic.errors import InvalidArguments

    with pytest.raises(InvalidArguments, match="limited to 14"):
        solve_overlay_bruteforce(generate_psepr(15, 0).problem)
