"""``tropic sun`` on the shipped samples (a synthetic seven-region matrix, the business-hours demand),
and its refusals of bad input (exit 2, one clear message)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.sun.demand import business_sample_path
from tropic.sun.run import latency_sample_path

runner = CliRunner()
SAMPLES = ["--latency", str(latency_sample_path()), "--demand", str(business_sample_path())]


def test_sun_compares_the_three_strategies(tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "sun",
            *SAMPLES,
            "--hours",
            "24",
            "--step-min",
            "60",
            "--members",
            "3",
            "--json",
            "--plots",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = data["strategies"]
    for name in ("static-single", "static-global", "dynamic"):
        for key in ("mean_ms", "p95_ms", "migrations", "downtime_s", "cost"):
            assert key in rows[name]
    assert rows["static-global"]["mean_ms"] <= rows["static-single"]["mean_ms"]
    assert rows["dynamic"]["migrations"] <= 7
    assert isinstance(rows["reduction_vs_best_static"], float)
    assert data["read_fraction"] == 0.9 and data["quorum"] == "majority of 3 (2)"
    assert {Path(p).name for p in data["plots"]} == {"sun-latency.png", "sun-members.png"}
    assert all(Path(p).stat().st_size > 1000 for p in data["plots"])


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": {"a": {"a": "x"}}}', encoding="utf-8")
    r = runner.invoke(app, ["sun", "--latency", str(bad), "--demand", str(business_sample_path())])
    assert r.exit_code == 2 and "data.a.a = 'x'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["sun", *SAMPLES, "--members", "20", "--capacity", "2"])
    assert r.exit_code == 2 and "20 members do not fit: 7 regions x capacity 2 = 14 places" in r.output
    r = runner.invoke(app, ["sun", *SAMPLES, "--without", "mars-1"])
    assert r.exit_code == 2 and "mars-1" in r.output


def test_no_strategy_beats_the_exhaustive_bound() -> None:
    r = runner.invoke(
        app,
        [
            "sun",
            *SAMPLES,
            "--step-min",
            "60",
            "--members",
            "3",
            "--oracle",
            "--bound",
            "--no-controller",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows, limit = data["strategies"], data["bound"]
    best_static = min(rows["static-single"]["mean_ms"], rows["static-global"]["mean_ms"])
    assert limit["static_optimum_ms"] <= best_static + 0.01  # the exact optimum: CP-SAT finds no better
    assert rows["static-global"]["mean_ms"] <= limit["static_optimum_ms"] + 0.01  # and the baseline is it
    for name in ("static-single", "static-global", "dynamic", "oracle-hourly"):
        assert rows[name]["mean_ms"] >= limit["bound_ms"] - 0.01, name
    assert rows["reduction_vs_best_static"] <= limit["ceiling_vs_best_static"] + 1e-3
    assert limit["placements"] > 0
