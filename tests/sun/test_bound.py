"""The exhaustive bound against a brute force over the model itself (:mod:`tropic.sun.model`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.errors import ConfigError
from tropic.sun.bound import bound, count_placements
from tropic.sun.contract import Demand, LatencyMatrix, Placement
from tropic.sun.model import day_latency, step_points, weighted_mean

from .helpers import MATRIX, demand


def _every_placement(matrix: LatencyMatrix, members: int, capacity: int) -> list[Placement]:
    out: list[Placement] = []
    for combo in itertools.combinations_with_replacement(matrix.regions, members):
        if max(combo.count(r) for r in combo) > capacity:
            continue
        seen: set[str] = set()
        for i, region in enumerate(combo):
            if region not in seen:
                seen.add(region)
                out.append(Placement(combo, i))
    return out


def _brute(matrix: LatencyMatrix, d: Demand, members: int, capacity: int) -> tuple[float, float, int]:
    """(static optimum, per-step optimum moved for free, placements) by the model, placement by placement."""
    every = _every_placement(matrix, members, capacity)
    static = min(day_latency(matrix, d, [p] * len(d.rate)).mean_ms for p in every)
    total = 0.0
    mass = 0.0
    for k in range(len(d.rate)):
        step_mass = sum(w for _, w in step_points(matrix, d, every[0], k))
        if step_mass <= 0:
            continue
        total += step_mass * min(weighted_mean(step_points(matrix, d, p, k)) for p in every)
        mass += step_mass
    return static, total / mass, len(every)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[LatencyMatrix, Demand, int, int]:
    names = [f"r{i}" for i in range(draw(st.integers(2, 4)))]
    # distinct values per row: the bound then equals the model exactly (ties are where it may be lower)
    rtt: dict[str, dict[str, float]] = {}
    for a in names:
        values = draw(st.lists(st.integers(1, 400), min_size=len(names), max_size=len(names), unique=True))
        rtt[a] = {b: float(v) for b, v in zip(names, values, strict=True)}
    matrix = LatencyMatrix(tuple(names), rtt)
    steps = draw(st.integers(1, 4))
    rates = [{n: float(draw(st.integers(0, 50))) for n in names} for _ in range(steps)]
    rates[0][names[0]] += 1.0  # some demand
    members = draw(st.integers(1, 5))
    capacity = draw(st.integers(max(1, -(-members // len(names))), members))
    reads = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    return matrix, demand_of(names, rates, reads), members, capacity


def demand_of(names: list[str], rates: list[dict[str, float]], reads: float) -> Demand:
    return Demand(
        step_s=900,
        client_regions=tuple(names),
        attach={n: n for n in names},
        rate=tuple(rates),
        read_fraction=reads,
    )


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_the_bound_is_the_model_s_exact_optimum_per_step_and_for_the_day(
    case: tuple[LatencyMatrix, Demand, int, int],
) -> None:
    matrix, d, members, capacity = case
    got = bound(matrix, d, members=members, capacity=capacity)
    static, per_step, n = _brute(matrix, d, members, capacity)
    assert got.placements == n == count_placements(len(matrix.regions), members, capacity)
    assert got.static_ms == pytest.approx(static, rel=1e-9, abs=1e-9)
    assert got.bound_ms == pytest.approx(per_step, rel=1e-9, abs=1e-9)
    static_day = day_latency(matrix, d, [got.static_placement] * len(d.rate)).mean_ms
    assert static_day == pytest.approx(static, rel=1e-9, abs=1e-9)
    assert got.bound_ms <= got.static_ms + 1e-9


def test_with_ties_the_bound_stays_at_or_under_the_model() -> None:
    tied = {
        "A": {"A": 1.0, "B": 10.0, "C": 10.0},
        "B": {"A": 10.0, "B": 1.0, "C": 50.0},
        "C": {"A": 10.0, "B": 50.0, "C": 1.0},
    }
    matrix = LatencyMatrix(tuple(tied), tied)
    d = demand([{"A": 5.0, "B": 1.0, "C": 1.0}, {"B": 4.0, "C": 3.0}], read_fraction=0.5)
    got = bound(matrix, d, members=3, capacity=1)
    static, per_step, _ = _brute(matrix, d, 3, 1)
    assert got.static_ms <= static + 1e-9
    assert got.bound_ms <= per_step + 1e-9


def test_demand_that_moves_gains_what_the_model_says() -> None:
    # All demand in A, then all in C: one member follows it; static must sit in one place.
    d = demand([{"A": 10.0, "C": 0.0}, {"A": 0.0, "C": 10.0}], read_fraction=1.0)
    got = bound(MATRIX, d, members=1, capacity=1)
    assert got.bound_ms == pytest.approx(1.0)  # each step at its own region's 1 ms
    # static in A: (1 + 110) / 2; in B: (10 + 90) / 2; in C: (100 + 1) / 2
    assert got.static_ms == pytest.approx(50.0)
    assert got.static_placement == Placement(("B",), 0)
    assert got.ceiling() == pytest.approx(1 - 1.0 / got.static_ms)


def test_refuses_what_does_not_fit_or_is_too_large() -> None:
    d = demand([{"A": 1.0}])
    with pytest.raises(ConfigError, match="do not fit"):
        bound(MATRIX, d, members=4, capacity=1)
    names = [f"r{i}" for i in range(60)]
    big = LatencyMatrix(tuple(names), {a: {b: 1.0 for b in names} for a in names})
    with pytest.raises(ConfigError, match="--oracle"):
        bound(big, demand_of(names, [{n: 1.0 for n in names}], 0.9), members=9, capacity=9)
