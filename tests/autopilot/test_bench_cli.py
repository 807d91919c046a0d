"""``tropic autopilot bench`` on the shipped sample, and its refusals of bad input (exit 2)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from tropic.cli.main import app

runner = CliRunner()


def test_the_bench_compares_the_policies_on_the_shipped_sample(tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    r = runner.invoke(
        app,
        [
            "autopilot",
            "bench",
            "--hosts",
            "40",
            "--vms",
            "20",
            "--policies",
            "npa,none,watcher,lr-mmt,tropic",
            "--time-limit",
            "1",
            "--json",
            "--plot-dir",
            str(plots),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = data["policies"]
    for name in ("none", "watcher", "lr-mmt"):
        row = rows[name]
        for key in ("energy_kwh", "slatah", "pdm", "slav", "migrations", "active_host_hours", "pass_s_p99"):
            assert key in row, (name, key)
        assert row["refused"] == 0 and row["energy_vs_lr_mmt"] > 0
    assert rows["none"]["migrations"] == 0 and rows["none"]["slav"] == 0.0
    # Consolidation saves energy against no consolidation, which saves against every host at full power.
    assert rows["lr-mmt"]["energy_kwh"] < rows["none"]["energy_kwh"] < rows["npa"]["energy_kwh"]
    assert rows["watcher"]["energy_kwh"] < rows["none"]["energy_kwh"]
    assert rows["lr-mmt"]["migrations"] > 0 and rows["lr-mmt"]["transactions"] >= rows["lr-mmt"]["migrations"]
    assert rows["lr-mmt"]["energy_vs_lr_mmt"] == 1.0
    if rows["tropic"] is None:
        assert "not in this build" in data["notes"]["tropic"] and data["energy_vs_lr_mmt"] is None
    else:
        tropic = rows["tropic"]
        assert data["energy_vs_lr_mmt"] == tropic["energy_vs_lr_mmt"] > 0
        assert tropic["refused"] == 0 and tropic["migrations"] > 0
        assert tropic["energy_kwh"] < rows["none"]["energy_kwh"]
        assert "tropic" not in data["notes"]  # built with the bench's headroom
    assert sorted(p.name for p in plots.iterdir()) == ["active-hosts.png", "energy-vs-slav.png"]
    assert (plots / "active-hosts.png").read_bytes()[:4] == b"\x89PNG"


def test_the_table_names_every_policy() -> None:
    r = runner.invoke(
        app, ["autopilot", "bench", "--hosts", "40", "--vms", "20", "--policies", "none,lr-mmt"]
    )
    assert r.exit_code == 0, r.output
    assert "lr-mmt" in r.stdout and "none" in r.stdout


def test_memory_enforced_keeps_every_migration_within_4_gb() -> None:
    r = runner.invoke(
        app,
        [
            "autopilot",
            "bench",
            "--hosts",
            "40",
            "--vms",
            "30",
            "--policies",
            "watcher",
            "--memory",
            "enforced",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["policies"]["watcher"]
    assert row["refused"] == 0


def run_bad(*args: str) -> str:
    r = runner.invoke(app, ["autopilot", "bench", "--hosts", "40", *args])
    assert r.exit_code == 2, r.output
    return r.output


def test_an_unknown_policy_is_refused() -> None:
    assert "unknown policy 'thr-mmt'" in run_bad("--policies", "none,thr-mmt")


def test_an_impossible_headroom_is_refused() -> None:
    assert "--headroom 1.5 is impossible" in run_bad("--headroom", "1.5")
    assert "--headroom 0 is impossible" in run_bad("--headroom", "0")


def test_an_impossible_percentile_is_refused() -> None:
    assert "--percentile 150 is impossible" in run_bad("--percentile", "150")


def test_a_malformed_trace_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"vm,u0,u1\na,1,2\nb,1\n"))
    out = run_bad("--trace", str(bad))
    assert f"{bad}:3:" in out and "expected 3 fields" in out


def test_too_few_hosts_for_the_trace_is_refused() -> None:
    r = runner.invoke(app, ["autopilot", "bench", "--hosts", "2", "--policies", "none"])
    assert r.exit_code == 2 and "cannot hold" in r.output


def test_an_impossible_time_limit_is_refused() -> None:
    assert "--time-limit 0 is impossible" in run_bad("--time-limit", "0")


def test_a_bad_memory_mode_is_refused() -> None:
    assert "--memory must be cloudsim or enforced" in run_bad("--memory", "sometimes")
