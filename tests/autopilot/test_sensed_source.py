"""The service's snapshot source: each pass senses through the controller's driver (the sim playing a
trace), keeps the readings in the knowledge base in the controller's store, and predicts each VM's
demand from them; a controller reopened on the store (a restart, a new leader) reads them back."""

from __future__ import annotations

import time
from pathlib import Path

from core.helpers import small_dc, spawn
from tropic.autopilot.traces import TracePlayer, load_planetlab, sample_path
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.service.autopilot import AutopilotSettings, play, sensed_source
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State


def test_passes_sense_remember_and_predict(tmp_path: Path) -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    t0 = time.time() - 600  # readings within the knowledge base's look-back
    player = TracePlayer(load_planetlab(sample_path()), start=t0, speed=1.0)
    assert play(sim, player) == 1
    c = Controller.open(SQLiteStore(tmp_path / "s.db"), sim, initial=lambda: model).start()
    try:
        for i in range(3):
            assert c.wait(c.submit("spawn_vm", spawn("r1", 1, f"v{i}")), 30).state is State.COMMITTED
        source = sensed_source(c)
        first = source(t0)
        snap = source(t0 + 300.0)  # the next 5-minute sample
        vms = [v for v in snap.vms.values() if v.host.endswith("host-01")]
        assert len(vms) == 3 and all(v.demand is not None and v.demand >= 0 for v in vms)
        assert not snap.stale and first.at == t0
        # What the trace plays, times the VM's vCPUs, is what the predictor sees (p-percentile of 2 readings).
        expected = {
            v.path: max(player.cpu(f"r1/{v.path.rsplit('/', 1)[1]}", t) or 0.0 for t in (t0, t0 + 300.0))
            * v.vcpus
            for v in vms
        }
        for v in vms:
            assert v.demand is not None and 0.0 <= v.demand <= expected[v.path] + 1e-9
        rows = c.store.observations(since=-1.0, limit=1000)
        assert {r[0] for r in rows} >= {v.path for v in vms}
    finally:
        c.stop()
        c.store.close()
    # A controller reopened on the store reads the readings back: with the sensor now silent, its first
    # pass still predicts from what its predecessor recorded.
    sim.utilisation = None
    again = Controller.open(SQLiteStore(tmp_path / "s.db"), sim).start()
    try:
        snap = sensed_source(again)(t0 + 400.0)
        assert all(v.demand is not None for v in snap.vms.values() if v.host.endswith("host-01"))
    finally:
        again.stop()
        again.store.close()


def test_a_bad_trace_is_one_clear_error(tmp_path: Path) -> None:
    import pytest

    from tropic.errors import ConfigError

    bad = tmp_path / "day.csv"
    bad.write_text("vm,u0,u1\nweb,10\n")
    with pytest.raises(ConfigError, match="--sim-trace"):
        AutopilotSettings(policies="hotspot", sim_trace=str(bad)).check()
