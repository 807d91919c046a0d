"""``tropic ha bench`` end to end on the suite's real ZooKeeper ensemble: the KV job under load, replicas
(or their hosts) killed, replaced by the healer's transactions; nothing acknowledged lost, the history
linearizable. And the report's pieces on hand-made records."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tropic.ha.bench import BenchSpec, ReplicaWatch, RunRecord, replacements, summarise
from tropic.ha.contract import ReplicaInfo
from tropic.ha.load import KillEvent, Record


@pytest.mark.parametrize("kill", ["process", "host"])
def test_bench_loses_nothing_and_stays_linearizable(zk_uri: str, kill: str) -> None:
    from tropic.scenario.ha_bench import run_bench

    spec = BenchSpec(
        replicas=3,
        duration=8.0,
        kill_every=3.0,
        kill=kill,  # type: ignore[arg-type]
        clients=3,
        keys=10,
        baseline_duration=1.0,
        zk_uri=zk_uri,
    )
    data = run_bench(spec)
    assert data["lost_acknowledged_writes"] == 0, data["lost"]
    assert data["duplicated_writes"] == 0
    assert data["linearizable"] is True, data["linearizability"]
    assert data["acknowledged_writes"] > 0 and data["throughput"] > 0
    assert len(data["kills"]) == 2 and data["kill_errors"] == []
    assert data["failed_transactions"] == []
    assert data["healed"] is True, data["healer_events"]
    # every kill answered by a replacement the healer made; the replicas all serve at the end (a
    # replacement may itself be killed while it catches up, and never serve)
    assert len(data["replacements"]) >= len(data["kills"])
    assert data["replacements"][-1]["serving_s"] is not None
    assert {e["kind"] for e in data["healer_events"]} >= {"replica-dead", "replaced"}
    assert data["baseline"]["throughput"] > 0 and data["overhead_ratio"] > 0


def test_cli_bad_input_is_one_line_and_exit_2() -> None:
    for args in (["--kill", "nope"], ["--duration", "0"], ["--program", "'unbalanced"]):
        done = subprocess.run(
            [sys.executable, "-m", "tropic.cli", "ha", "bench", *args, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
        assert done.stdout == ""


def test_summary_of_records() -> None:
    records = [
        Record("a", "get", "k", 0.0, 0.010, None),
        Record("a", "append", "k", 0.010, 0.030, "a.1;"),
        Record("b", "append", "k", 0.0, None, "b.1;", error="timeout"),
    ]
    s = summarise(records, 0.0, 2.0)
    assert s["throughput"] == 1.0 and s["failed"] == 1 and s["requests"] == 3
    assert s["p50_ms"] == pytest.approx(10.0) and s["p99_ms"] == pytest.approx(20.0)
    assert summarise([], 0.0, 1.0)["p50_ms"] is None


class StaticZk:
    def __init__(self) -> None:
        self.now: dict[str, ReplicaInfo] = {}

    def replicas(self, job: str) -> dict[str, Any]:
        return dict(self.now)


def test_replacements_match_kills_in_order() -> None:
    zk = StaticZk()
    clock = [0.0]
    watch = ReplicaWatch(zk, lambda: clock[0])
    zk.now = {n: ReplicaInfo(n, "127.0.0.1:1", 5, state="serving") for n in ("kv-1", "kv-2", "kv-3")}
    watch.poll()
    run = RunRecord(initial={"kv-1", "kv-2", "kv-3"})
    run.kills = [KillEvent(1.0, "/jobs/kv/kv-2", {"replicas": ["kv-2"]})]
    clock[0] = 3.0
    zk.now = {**zk.now, "kv-4": ReplicaInfo("kv-4", "127.0.0.1:2", -1, host="/h4")}
    del zk.now["kv-2"]
    watch.poll()
    clock[0] = 3.5
    zk.now["kv-4"] = ReplicaInfo("kv-4", "127.0.0.1:2", 5, host="/h4", state="serving")
    watch.poll()
    (row,) = replacements(run, watch)
    assert row["replica"] == "kv-4" and row["replaces"] == ["kv-2"] and row["host"] == "/h4"
    assert row["catch_up_s"] == 0.5 and row["serving_after_kill_s"] == 2.5
    assert json.dumps(row)  # plain data
