"""The autopilot across a leader's death on the real ZooKeeper ensemble: the leader records a pass of
four migrations, runs two, submits the third and is SIGKILLed before it can note that transaction in
the pass record. The next leader resumes the pass: the third migration is found by its idempotency key
(not submitted again), the fourth is submitted, and every VM ends where the plan put it, moved once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.helpers import small_dc, spawn
from tropic.autopilot.actuator import ControllerExecutor
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.passes import ZooKeeperPassBook
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import VM, project
from tropic.store.zk import ZooKeeperStore
from tropic.txn import Controller, State

H1, H2, H3 = "/compute/r1/host-01", "/compute/r1/host-02", "/compute/r1/host-03"
NAMES = ["m0", "m1", "m2", "m3"]
DEST = {"m0": H2, "m1": H3, "m2": H2, "m3": H3}

# The leader: a coordinator with a fixed four-move plan; SIGKILL right after the third step's
# transaction is durably submitted, before the pass record notes it.
LEADER = """
import os, signal, sys
from tropic.autopilot.actuator import ControllerExecutor
from tropic.autopilot.base import Move, Plan
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.passes import ZooKeeperPassBook
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.store.zk import ZooKeeperStore
from tropic.txn import Controller

uri, devices = sys.argv[1], sys.argv[2]
dest = dict(a.split("=") for a in sys.argv[3:])
store = ZooKeeperStore(uri)
c = Controller.open(store, SharedSimDriver(devices)).start()

class Fixed:
    name = "fixed"
    def plan(self, snapshot, *, budget, time_limit):
        return Plan("fixed", moves=tuple(Move(f"/compute/r1/host-01/{n}", d) for n, d in dest.items()),
                    gain=10.0, cost=1.0, why="four moves")

class Dies(ControllerExecutor):
    def submit(self, procedure, args, key):
        txn = super().submit(procedure, args, key)
        if key.endswith(":2"):
            os.kill(os.getpid(), signal.SIGKILL)
        return txn

source = lambda at: c.call(lambda: fleet_snapshot(c.model, at))
co = Coordinator(source, [Fixed()], Dies(c), ZooKeeperPassBook(store.client), interval=3600)
co.run_once("periodic")
"""


def _where(c: Controller) -> dict[str, str]:
    def read() -> dict[str, str]:
        out = {}
        for p, n in c.model.nodes.items():
            if n.kind == VM.kind:
                out[p.rsplit("/", 1)[1]] = p.rsplit("/", 1)[0]
        return out

    return c.call(read)


def test_a_leader_sigkilled_during_a_pass_loses_and_duplicates_no_migration(
    zk_uri: str, tmp_path: Path
) -> None:
    devices = tmp_path / "devices.db"
    model = small_dc()
    sim = SharedSimDriver(devices)
    sim.load(project(model))
    store = ZooKeeperStore(zk_uri)
    c = Controller.open(store, sim, initial=lambda: model).start()
    for n in NAMES:
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, n, memory_mib=512)), 30).state is State.COMMITTED
    c.stop()
    store.close()
    sim.close()

    proc = subprocess.run(
        [sys.executable, "-c", LEADER, zk_uri, str(devices), *(f"{n}={d}" for n, d in DEST.items())],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    store = ZooKeeperStore(zk_uri)
    sim = SharedSimDriver(devices)
    c = Controller.open(store, sim).start()  # the new leader takes the store over
    try:
        book = ZooKeeperPassBook(store.client)
        [record] = book.get_autopilot_passes()
        assert not record["done"] and [s.get("txn") is not None for s in record["steps"]] == [
            True,
            True,
            False,  # submitted, but the leader died before noting it
            False,
        ]
        co = Coordinator(lambda at: None, [], ControllerExecutor(c), book)  # type: ignore[arg-type,return-value]
        [d] = co.resume()
        assert d.trigger == "resume" and [s.state for s in d.steps] == ["COMMITTED"] * 4, d.steps
        migrations = [t for t in c.transactions() if t.procedure == "migrate_vm"]
        if len(migrations) < 4:  # final ones may be only in the store: ask it
            from tropic.records.query import TxnQuery

            migrations = [t for t in store.find_txns(TxnQuery()) if t.procedure == "migrate_vm"]
        moved = sorted(str(t.args["vm"]).rsplit("/", 1)[1] for t in migrations)
        assert moved == NAMES  # each VM migrated exactly once: nothing lost, nothing twice
        assert len({s.txn for s in d.steps}) == 4
        assert all(t.state is State.COMMITTED for t in migrations)
        where = _where(c)
        assert {n: where[n] for n in NAMES} == DEST
        assert book.get_autopilot_passes()[0]["done"] is True
        assert co.resume() == []
        report = c.check()
        assert report["violations"] == []
    finally:
        c.stop()
        store.close()
        sim.close()


def test_a_replica_runs_the_autopilot_only_while_it_leads_and_resumes_the_last_terms_pass(
    zk_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tropic serve --autopilot hotspot`` on zk://: no coordinator while standing by; taking the lead
    starts one (its API answers through ``app.state.autopilot``) that first finishes the unfinished pass a
    previous term recorded; stepping down stops it."""
    from tropic.api import AuditLog, TokenStore
    from tropic.service.autopilot import AutopilotSettings
    from tropic.service.wiring import ReplicatedService, ServiceConfig, build_service

    service = build_service(
        ServiceConfig(
            tokens=TokenStore([("admin", "x" * 32, "admin")]),
            audit=AuditLog(tmp_path / "audit.jsonl"),
            store=zk_uri,
            driver=f"sim://{tmp_path / 'devices.db'}",
            port=0,
            reconcile_interval=0,
            autopilot=AutopilotSettings(policies="hotspot", interval=3600),
        )
    )
    assert isinstance(service, ReplicatedService) and service.autopilot is None
    assert any("autopilot while leading: hotspot every 3600 s" in line for line in service.describe())
    apps: list[Any] = []
    monkeypatch.setattr(service.gate, "lead", apps.append)  # no HTTP server here
    model = small_dc()
    sim = SharedSimDriver(tmp_path / "devices.db")
    sim.load(project(model))
    store = ZooKeeperStore(zk_uri)
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, "m0", memory_mib=512)), 30).state is State.COMMITTED
        # The previous term recorded a one-step pass and submitted nothing.
        step = {"procedure": "migrate_vm", "args": {"vm": f"{H1}/m0", "dest": H2}, "key": "autopilot:old:0"}
        old = {
            "id": "old",
            "seq": 1.0,
            "at": time.time(),
            "policy": "hotspot",
            "digest": "d",
            "steps": [step],
        }
        ZooKeeperPassBook(store.client).put_autopilot_pass({**old, "done": False})
        service._lead(c)
        autopilot = service.autopilot
        assert autopilot is not None and apps[0].state.autopilot is autopilot
        assert c._wait_until(lambda: len(autopilot.decisions) >= 1, 60)
        [d] = autopilot.decisions.recent()
        assert d.trigger == "resume" and [s.state for s in d.steps] == ["COMMITTED"]
        assert _where(c)["m0"] == H2
        service._step_down()
        assert (
            service.autopilot is None and autopilot._thread is not None and not autopilot._thread.is_alive()
        )
    finally:
        c.stop()
        store.close()
        sim.close()
        service.devices.close()
        for s in service.sockets:
            s.close()
