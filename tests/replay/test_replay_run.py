"""A replay of the shipped sample: every transaction final, model == devices, and the report written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.replay import ReplaySpec, TraceFiles, run_replay
from tropic.replay.report import valid_png, write_report

runner = CliRunner()


def test_sample_replay_at_high_speedup_is_complete_and_consistent(tmp_path: Path) -> None:
    trace = TraceFiles.sample().load()
    result = run_replay(trace, ReplaySpec(speedup=5000, store=f"sqlite:///{tmp_path / 'r.db'}"))
    s = result.summary
    assert s["all_final"] and s["consistent"] and s["orphans"] == [] and s["violations"] == 0
    assert s["submitted"] == s["finished"] == s["controller"]["submitted"]
    assert s["committed"] + s["aborted"] + s["failed"] == s["submitted"]
    arrivals = s["demand"]["arrivals"]
    assert arrivals == len(trace)
    assert s["events"] == arrivals + s["demand"]["departures"]
    # Every VM was spawned or rejected; a destroy only follows a committed spawn.
    spawns = arrivals - s["rejected"]
    assert spawns <= s["submitted"] <= 2 * spawns
    assert s["latency_ms"]["p50"] > 0 and s["latency_ms"]["p99"] >= s["latency_ms"]["p50"]
    assert s["max_queue_depth"] >= 1 and 1 <= s["peak_hosts_used"] <= s["hosts"]
    assert result.healthy

    files = write_report(result, tmp_path / "report")
    names = {f.name for f in files}
    assert {"report.md", "summary.json", "series.csv", "latency.png", "throughput.png", "hosts.png"} <= names
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert valid_png(f), f
    text = (tmp_path / "report" / "report.md").read_text()
    assert "p50 / p95 / p99" in text and "latency.png" in text and "synthetic sample" in text
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["submitted"] == s["submitted"]


def test_vms_that_fit_nowhere_are_rejected_not_a_crash(tmp_path: Path) -> None:
    trace = TraceFiles.sample().load(max_bins=6)
    result = run_replay(trace, ReplaySpec(speedup=5000, hosts=1, store="memory://"))
    s = result.summary
    assert s["rejected"] > 0 and s["rejected_by_reason"] == {"no_capacity": s["rejected"]}
    assert s["all_final"] and s["consistent"] and s["aborted"] == 0


def test_cli_json_and_report(tmp_path: Path) -> None:
    report = tmp_path / "out"
    result = runner.invoke(
        app, ["replay", "--speedup", "5000", "--max-bins", "8", "--json", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["all_final"] and data["consistent"] and data["report"] == str(report)
    for key in ("offered_txn_s", "throughput_txn_s", "aborted_by_reason", "max_queue_depth"):
        assert key in data
    assert set(data["latency_ms"]) >= {"p50", "p95", "p99"}
    assert all(valid_png(report / n) for n in ("latency.png", "throughput.png", "hosts.png"))


def test_cli_sweep_over_a_store_uri(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sweep.db'}"
    args = ["replay", "--sweep", "2000,4000", "--max-bins", "4", "--p99-bound-ms", "60000", "--store", store]
    result = runner.invoke(app, [*args, "--json", "--report", str(tmp_path / "sw")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["best_speedup"] == 4000 and [r["speedup"] for r in data["runs"]] == [2000, 4000]
    assert (tmp_path / "sweep-s2000.db").exists() and (tmp_path / "sweep-s4000.db").exists()
    assert valid_png(tmp_path / "sw" / "sweep.png") and (tmp_path / "sw" / "s4000" / "report.md").exists()


def test_cli_sweep_in_zookeeper_mode(zk_uri: str, tmp_path: Path) -> None:
    """The same sweep against the real ZooKeeper ensemble: one fresh chroot per speedup."""
    args = ["replay", "--sweep", "1000,2000", "--max-bins", "2", "--p99-bound-ms", "60000", "--store", zk_uri]
    result = runner.invoke(app, [*args, "--json", "--report", str(tmp_path / "zk")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["best_speedup"] == 2000 and [r["speedup"] for r in data["runs"]] == [1000, 2000]
    for run in data["runs"]:
        detail = run["detail"]
        assert detail["store"].startswith("zk://") and detail["store"].endswith(f"-s{run['speedup']:g}")
        assert detail["all_final"] and detail["consistent"] and detail["committed"] == detail["submitted"] > 0


def clean(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arrivals", "/nonexistent/arrivals.txt"], "/nonexistent/arrivals.txt: arrivals file not found"),
        (["--speedup", "100", "--placement", "random"], "--placement must be one of best-fit, worst-fit"),
        (["--sweep", "1,x"], "bad speedup 'x'"),
        (["--lifetimes", "l.txt"], "need --arrivals"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["replay", "--no-report", *args])
    assert result.exit_code == 2
    assert message in clean(result.stderr) and "Traceback" not in result.stderr


def test_a_malformed_trace_names_the_file_the_user_gave(tmp_path: Path) -> None:
    sample = TraceFiles.sample()
    other = tmp_path / "elsewhere"
    other.mkdir()
    bad = other / "my-lifetimes.txt"
    bad.write_text(sample.lifetimes.read_text().replace("U", "X", 1))
    args = ["--arrivals", str(sample.arrivals), "--lifetimes", str(bad), "--no-report"]
    args += ["--lifetime-bins", str(sample.lifetime_bins)]
    result = runner.invoke(app, ["replay", *args])
    assert result.exit_code == 2
    err = clean(result.stderr)
    assert "expected 'U<bin>' or 'C<bin>'" in err
    squeezed = "".join(result.stderr.split())  # rich wraps long paths at the terminal width
    assert str(bad) in squeezed and "tropic-trace-" not in squeezed


def test_a_used_store_is_refused(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'r.db'}"
    trace = TraceFiles.sample().load(max_bins=2)
    run_replay(trace, ReplaySpec(speedup=5000, store=store, check=False))
    result = runner.invoke(app, ["replay", "--max-bins", "2", "--store", store, "--no-report"])
    assert result.exit_code == 2 and "already holds a model" in clean(result.stderr)
