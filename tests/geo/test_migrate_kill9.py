"""Durability of the cross-region migration: SIGKILL a process that keeps migrating a member between
regions (a SQLite store, a sim device file), at several moments; restart on the same files, and every
migration has ended exactly once: the member runs in one region, its address leads there on the model
and on the overlay's devices, the model equals the devices and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geo.helpers import GROUP
from tropic.drivers import SimDriver
from tropic.model import VM, Address, AddressGroup
from tropic.store.sqlite import SQLiteStore
from tropic.txn import FINAL, Controller

WORKER = Path(__file__).with_name("migrate_worker.py")


def migrations(store: Path) -> int:
    f = Path(str(store) + ".count")
    try:
        return int(f.read_text() or 0)
    except (OSError, ValueError):
        return 0


def run_killed(store: Path, sim: Path, more: int, jitter: float) -> None:
    target = migrations(store) + more
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(store), str(sim)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and migrations(store) < target and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the worker ended before it was killed"
    time.sleep(jitter)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_killed_migration_ends_exactly_once(tmp_path: Path, seed: int) -> None:
    store, sim_path = tmp_path / "store.db", tmp_path / "devices.db"
    for i, jitter in enumerate((0.0, 0.003 * seed, 0.011, 0.0017 * seed)):
        run_killed(store, sim_path, more=2 + i, jitter=jitter)
    sim = SimDriver(state_file=sim_path)
    c = Controller.open(SQLiteStore(store), sim, workers=2).start()
    try:
        assert c.drain(120)
        assert all(t.state in FINAL for t in c.transactions())
        report = c.check()
        assert report["consistent"], report["differences"]
        assert report["orphans"] == [] and report["violations"] == []
        assert c.fenced == {}

        def where() -> tuple[list[str], dict[str, str]]:
            view = c.model.reader()
            vms = [p for p, n in c.model.nodes.items() if n.kind == "vm" and p.endswith("/m1")]
            addrs = {a.path: a.vm for a in view.get(GROUP, AddressGroup).children(Address)}
            for p in vms:
                assert view.get(p, VM).state == "running"
            return vms, addrs

        vms, addrs = where()
        assert len(vms) == 1  # in one region
        assert vms[0] in addrs.values()  # reached by its address, on the model ...
        assert {k: v for k, v in sim.overlay.items()} == addrs  # ... and on the overlay's devices
        assert sim.duplicates() == []  # no step applied twice
        assert migrations(store) >= 10
    finally:
        c.stop()
        sim.close()
