"""A short replay of the real Azure trace, read from ../shared/data when it is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.replay import ReplaySpec, TraceFiles, run_replay

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure-v1"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (REAL / "arrivals.txt").is_file(),
        reason=f"real Azure trace not found at {REAL} (optional reference data; the sample covers the rest)",
    ),
]


def test_first_bins_of_the_real_trace_replay_completely() -> None:
    trace = TraceFiles.in_directory(REAL).load(max_bins=2)
    result = run_replay(trace, ReplaySpec(speedup=3000, store="memory://"))
    s = result.summary
    assert s["demand"]["arrivals"] == len(trace) > 100
    assert s["all_final"] and s["consistent"] and s["aborted"] == 0 and s["rejected"] == 0
    assert s["trace"]["vms"] == len(trace) and s["trace"]["time_bins"] == 2
