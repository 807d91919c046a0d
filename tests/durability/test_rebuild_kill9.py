"""Durability of rebuilding a dead host's VMs: SIGKILL a process that rebuilds them one transaction each
(a SQLite store, a sim device file) at several moments, restart on the same files, and every rebuild has
ended exactly once: each VM exists once, with its uid, either still on the dead host or rebuilt on a live
one; the dead host's record of every rebuilt VM is released; no step was applied twice, and the devices
equal the model everywhere but on the dead host (whose device nobody can read or change)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durability.rebuild_worker import DEAD, VMS
from tropic.drivers import SimDriver
from tropic.model import VM, Host, audit, project
from tropic.model.inventory import orphans, without
from tropic.store.sqlite import SQLiteStore
from tropic.txn import FINAL, Controller, State

WORKER = Path(__file__).with_name("rebuild_worker.py")


def rebuilds(store: Path) -> int:
    try:
        return int(Path(str(store) + ".count").read_text() or 0)
    except (OSError, ValueError):
        return 0


def in_flight(store: Path) -> int:
    """Transactions the store holds as started and not final: a kill landed inside them."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        q = "SELECT COUNT(*) FROM txns WHERE state IN ('STARTED', 'ROLLING_BACK')"
        return int(conn.execute(q).fetchone()[0])
    finally:
        conn.close()


def run_killed(store: Path, sim: Path, more: int, jitter: float) -> int:
    """Run the worker until ``more`` rebuilds more committed and the next one has started, SIGKILL it
    ``jitter`` s later (inside that rebuild's 10 ms device steps); how many were cut mid-way."""
    target = rebuilds(store) + more
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(store), str(sim)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and rebuilds(store) < target and time.monotonic() < deadline:
        time.sleep(0.002)
    # Drive the kill into a rebuild rather than hope for it: wait until one is started in the store.
    while proc.poll() is None and time.monotonic() < deadline and in_flight(store) == 0:
        time.sleep(0.001)
    assert proc.poll() is None, "the worker ended before it was killed"
    time.sleep(jitter)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    return in_flight(store)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_killed_rebuild_ends_exactly_once(tmp_path: Path, seed: int) -> None:
    store, sim_path = tmp_path / "store.db", tmp_path / "devices.db"
    cut = 0
    for i, jitter in enumerate((0.0, 0.003 * seed, 0.005, 0.0017 * seed, 0.001, 0.004)):
        cut += run_killed(store, sim_path, more=2 + i, jitter=jitter)
    # Each kill follows a started rebuild by at most a few ms, inside its device steps (10 ms each).
    assert cut >= 1, "no kill landed inside a rebuild"
    sim = SimDriver(state_file=sim_path)
    sim.fail_host(DEAD)
    c = Controller.open(SQLiteStore(store), sim, workers=2).start()
    try:
        assert c.drain(120)
        txns = c.transactions()
        assert all(t.state in FINAL for t in txns)
        committed = [t for t in txns if t.procedure == "rebuild_vm" and t.state is State.COMMITTED]
        assert len(committed) >= rebuilds(store) >= 20
        assert c.fenced == {}
        assert audit(c.model) == []
        logical, physical = without(project(c.model), {DEAD}), without(sim.inventory(), {DEAD})
        assert logical == physical and orphans(logical, physical) == []
        assert sim.duplicates() == []  # no step applied twice

        def census() -> tuple[dict[str, list[str]], dict[str, object]]:
            where: dict[str, list[str]] = {}
            for p, n in c.model.nodes.items():
                if n.kind == VM.kind:
                    where.setdefault(p.rsplit("/", 1)[1], []).append(p.rsplit("/", 1)[0])
            return where, c.model.reader().get(DEAD, Host).snapshot()

        where, dead = census()
        assert sorted(where) == [f"v{i:02d}" for i in range(VMS)]
        assert all(len(hosts) == 1 for hosts in where.values())  # each VM exists exactly once
        moved = {n for n, (h,) in where.items() if h != DEAD}
        assert len(moved) == len(committed)  # every committed rebuild moved one VM, once
        assert set(dead["configs"]) == set(where) - moved  # the released records are exactly those
        assert all(sim.inventory()["hosts"][h]["vms"].get(n) for n, (h,) in where.items() if n in moved)
    finally:
        c.stop()
        sim.close()
