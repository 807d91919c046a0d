"""``tropic optimize``: JSON for scripts, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.trace import sample_path

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["optimize", *args])
    # Rich wraps long error lines to the terminal width; compare the words.
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_psepr_json_reports_the_choice_and_the_exhaustive_optimum() -> None:
    code, out, _ = run("psepr", "--candidates", "12", "--seed", "3", "--bruteforce", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "optimal"
    assert 6 <= len(data["chosen"]) <= 10
    assert data["matches_bruteforce"] is True
    assert data["bruteforce"]["objective_exact"] == data["objective_exact"]
    assert data["solve_s"] >= 0 and data["bruteforce"]["subsets"] > 0


def test_psepr_bruteforce_refuses_too_many_candidates() -> None:
    code, out, err = run("psepr", "--candidates", "20", "--bruteforce", "--json")
    assert code == 2 and out == ""
    assert "limited to 14 candidates" in err and "Traceback" not in err


def test_placement_json_compares_with_the_baselines() -> None:
    code, out, _ = run("placement", "--vms", "120", "--hosts", "30", "--time-limit", "3", "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("hosts_cp", "hosts_ffd", "hosts_filter_weigh", "gap_to_bound", "solve_s", "lower_bound"):
        assert key in data
    assert data["lower_bound"] <= data["hosts_cp"] <= data["hosts_ffd"]


def test_placement_reads_a_trace_and_shows_the_plan() -> None:
    code, out, _ = run(
        "placement", "--vms", "40", "--hosts", "20", "--arrivals", str(sample_path()), "--show-plan", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["source"].startswith("azure:")
    assert len(data["plan"]) == 40 and {s["procedure"] for s in data["plan"]} == {"spawn_vm"}


def test_placement_errors_are_one_line_with_exit_code_2() -> None:
    code, _, err = run("placement", "--vms", "200", "--hosts", "2")
    assert code == 2 and "hosts are needed" in err
    code, _, err = run("placement", "--vms", "10", "--arrivals", "/no/such/trace.txt")
    assert code == 2 and "no such trace file" in err
    code, _, err = run("placement", "--strategy", "magic", "--vms", "10", "--hosts", "5")
    assert code == 2 and "unknown strategy" in err


def test_rebalance_executes_its_plan_as_transactions(tmp_path: Path) -> None:
    store = str(tmp_path / "rb.db")
    assert (
        runner.invoke(
            app, ["run-workload", "--store", store, "--txns", "40", "--fail-rate", "0", "--json"]
        ).exit_code
        == 0
    )
    code, out, _ = run("rebalance", "--store", store, "--json")
    plan = json.loads(out)
    assert code == 0 and plan["migrations"] == len(plan["plan"]) > 0
    assert plan["hosts_after"] < plan["hosts_before"]
    code, out, _ = run("rebalance", "--store", store, "--execute", "--json")
    done = json.loads(out)
    assert code == 0 and done["execution"]["ok"]
    assert all(o["state"] == "COMMITTED" for o in done["execution"]["outcomes"])
    check = runner.invoke(app, ["check", "--store", store, "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["consistent"]
    code, out, _ = run("rebalance", "--store", store, "--json")
    assert json.loads(out)["plan"] == []  # the target was reached


def test_rebalance_refuses_a_missing_store(tmp_path: Path) -> None:
    code, _, err = run("rebalance", "--store", str(tmp_path / "none.db"))
    assert code == 2 and "no such store" in err
