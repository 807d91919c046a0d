"""The follow-the-sun day on the real AWS matrix and Wikipedia demand, in the Supercloud experiment's
setting (clients in North America and Asia); skipped when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.sun.planner import SunConfig
from tropic.sun.run import SunSpec, run
from tropic.sun.strategies import reduction_vs_best_static

ROOT = Path(__file__).resolve().parents[2]
SHARED = next(
    (b / "shared" / "data" for b in (ROOT.parent, ROOT.parent.parent) if (b / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
AWS = SHARED / "latency" / "aws-cloudping-p50.json"
CONTINENTS = SHARED / "demand" / "wikipedia_edits_2011-08-31_by_continent.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (AWS.is_file() and CONTINENTS.is_file()),
        reason=f"AWS matrix or Wikipedia demand not found under {SHARED} (optional reference data)",
    ),
]


def test_the_quorum_follows_the_sun_between_north_america_and_asia() -> None:
    spec = SunSpec(
        latency=AWS,
        demand=CONTINENTS,
        clients=("NA", "AS"),
        read_fraction=0.0,
        config=SunConfig(),
        oracle=True,
    )
    result = run(spec)
    days = {d.strategy: d for d in result.days}
    dyn = days["dynamic"]
    assert dyn.migrations < 8
    assert reduction_vs_best_static(result.days[:3]) > 0.15
    assert days["oracle-hourly"].mean_ms <= dyn.mean_ms + 1e-9
    assert result.controller["migrate_member_refused"] == 0
    # the majority spends Asia's day in Asia, and North America's in North America
    regions_at = [set(p.members) for p in dyn.placements]
    assert any(p.members.count("ap-east-1") >= 3 for p in dyn.placements)
    assert any(p.members.count("us-east-2") >= 3 for p in dyn.placements)
    assert len(regions_at) == 96
