"""`tropic sun --emulate` end to end on the shipped samples: the emulation's report in the JSON, and bad
options refused before anything runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.cluster.zk_ensemble import find_zookeeper
from tropic.sun.demand import business_sample_path
from tropic.sun.run import latency_sample_path

runner = CliRunner()


def test_bad_emulate_options_are_refused_before_anything_runs() -> None:
    r = runner.invoke(app, ["sun", "--emulate", "--dilation", "0.5", "--json"])
    assert r.exit_code == 2
    assert "--dilation >= 1 (got 0.5)" in r.output
    assert "Traceback" not in r.output


@pytest.mark.skipif(
    find_zookeeper() is None, reason="ZooKeeper is not installed: run scripts/install-zookeeper.sh"
)
def test_sun_emulate_reports_measured_next_to_the_model() -> None:
    args = ["sun", "--latency", str(latency_sample_path()), "--demand", str(business_sample_path())]
    args += ["--hours", "3", "--step-min", "60", "--members", "3", "--json"]
    args += ["--emulate", "--emulate-steps", "3", "--time-scale", "3600"]  # 1 s per hourly step
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout[r.stdout.index("{") :])
    emulation = data["emulation"]
    assert emulation["members"] == 3
    assert len(emulation["steps"]) == 3
    assert emulation["step_seconds"] == pytest.approx(1.0)
    rows = {row["strategy"]: row for row in emulation["strategies"]}
    assert set(rows) == {"static-single", "static-global", "dynamic"}
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["measured_mean_ms"] >= 0.9 * row["model_mean_ms"]  # not faster than the network
        assert row["strategy_mean_ms"] == pytest.approx(
            data["strategies"][row["strategy"]]["mean_ms"], abs=0.01
        )
    assert sorted(emulation["ranking_model"]) == sorted(rows)
    assert isinstance(emulation["same_ranking"], bool)
