"""The bench on the real PlanetLab day 20110303 (CloudSim's reference day), cut to 80 hosts and the first
100 VMs so it stays quick; skipped when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.autopilot.bench.compare import BenchSpec, run_bench

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [
    base / "shared" / "data" / "planetlab" / "20110303.csv.gz" for base in (ROOT.parent, ROOT.parent.parent)
]
REAL = next((p for p in CANDIDATES if p.is_file()), CANDIDATES[0])

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not REAL.is_file(),
        reason=f"PlanetLab trace not found at {' or '.join(map(str, CANDIDATES))} (optional reference data)",
    ),
]


def test_the_real_day_replays_under_every_baseline() -> None:
    result = run_bench(
        BenchSpec(trace=REAL, hosts=80, vms=100, policies=("npa", "none", "watcher", "lr-mmt"))
    )
    data = result.to_dict()
    assert data["steps"] == 288 and data["vms"] == 100
    rows = data["policies"]
    assert rows["lr-mmt"]["energy_kwh"] < rows["none"]["energy_kwh"] < rows["npa"]["energy_kwh"]
    assert rows["lr-mmt"]["migrations"] > 0 and rows["lr-mmt"]["refused"] == 0
    assert 0 < rows["lr-mmt"]["slatah"] < 0.5 and 0 < rows["lr-mmt"]["pdm"] < 0.01
