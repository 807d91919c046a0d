"""Durability: SIGKILL the controller at random moments, restart, and prove every request ended exactly
once with the model restored and equal to the (durable) simulated devices."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TROPIC = [sys.executable, "-m", "tropic.cli"]


def stored(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run_killed(store: Path, txns: int, seed: int, extra: list[str], progress: int, jitter: float) -> int:
    """Start a run, wait until it has stored ``progress`` more transactions, then SIGKILL it."""
    target = stored(store) + progress
    proc = subprocess.Popen(
        [
            *TROPIC,
            "run-workload",
            "--store",
            str(store),
            "--txns",
            str(txns),
            "--seed",
            str(seed),
            "--json",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and stored(store) < target and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(jitter)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    return proc.returncode


def check(store: Path) -> dict[str, Any]:
    out = subprocess.run(
        [*TROPIC, "check", "--store", str(store), "--json"], capture_output=True, text=True, timeout=300
    )
    report: dict[str, Any] = json.loads(out.stdout)
    assert out.returncode == 0, (out.stderr, report)
    return report


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "extra"),
    [
        ("device-failures", ["--fail-rate", "0.03"]),
        ("failed-undos", ["--fail-rate", "0.05", "--undo-fail-rate", "0.05"]),
    ],
)
def test_sigkill_at_random_moments(tmp_path: Path, label: str, extra: list[str]) -> None:
    store = tmp_path / "store.db"
    rng = random.Random(label)
    kills = 0
    total = 0
    for round_ in range(22):
        total = 200 * (round_ + 1)  # every round has new work, so each kill lands mid-run
        code = run_killed(
            store, total, 11, [*extra, "--latency", "0.01"], rng.randint(1, 150), rng.uniform(0, 0.05)
        )
        kills += code == -signal.SIGKILL
    assert kills >= 20, f"only {kills} runs were killed mid-way"
    # Finish the workload, then recover and check.
    done = subprocess.run(
        [
            *TROPIC,
            "run-workload",
            "--store",
            str(store),
            "--txns",
            str(total),
            "--seed",
            "11",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = check(store)
    assert report["in_flight"] == 0
    assert report["duplicates"] == 0
    assert report["consistent"] is True, report["differences"]
    assert report["violations"] == 0
    assert report["orphans"] == []
    assert report["submitted"] == total == report["requests"], "a request was lost or submitted twice"
    assert report["missing_requests"] == []
    assert set(report["by_state"]) <= {"COMMITTED", "ABORTED", "FAILED"}
    # (with failed undos, fenced hosts refuse later work, so fewer commit)
    assert report["by_state"].get("COMMITTED", 0) > total // (10 if label == "failed-undos" else 3)
    if label == "failed-undos":
        assert report["failed"], "expected some FAILED transactions with failed undos"
        fenced = set(report["fenced"])
        for f in report["failed"]:
            assert f["left_behind"] and set(f["left_behind"]) <= fenced


def test_check_of_a_missing_store_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.db"
    out = subprocess.run(
        [*TROPIC, "check", "--store", str(missing)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "no tropic store" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "nowhere").exists()


def test_foreign_or_corrupt_store_is_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"this is not a database\n" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    for victim in (text, other):
        before = victim.read_bytes()
        mtime = victim.stat().st_mtime_ns
        out = subprocess.run(
            [*TROPIC, "check", "--store", str(victim)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2
        assert "not a tropic store" in out.stderr and "Traceback" not in out.stderr
        assert victim.read_bytes() == before and victim.stat().st_mtime_ns == mtime
        assert not Path(str(victim) + ".devices").exists()
        assert not Path(str(victim) + "-wal").exists()
