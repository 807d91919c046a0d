"""Placement on the real Azure trace (../shared/data/azure-v1), when it is there.

The speed and quality targets live in benchmarks/optimize_placement.py; this test only checks, quickly,
that a real batch is placed validly and better than first-fit-decreasing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.optimize import SolverSettings, check_placement, compare_placement, make_hosts, trace_batch

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure-v1"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (REAL / "arrivals.txt").is_file(),
        reason=f"real Azure trace not found at {REAL} (optional reference data, not shipped with tropic)",
    ),
]


def test_real_batch_is_placed_validly_with_fewer_hosts_than_ffd() -> None:
    batch = trace_batch(REAL / "arrivals.txt", 400)
    problem = batch.problem(make_hosts(80))
    result = compare_placement(problem, SolverSettings(time_limit_s=4))
    assert check_placement(problem, result.placement.assignment) == []
    assert result.ffd.complete
    assert result.placement.hosts_used < result.ffd.hosts_used
    assert result.placement.lower_bound <= result.placement.hosts_used
