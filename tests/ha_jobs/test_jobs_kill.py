"""Kill tests of replicated jobs on the real ZooKeeper ensemble: the KV example runs as a job of three
replicas (the replica wrapper, started by the sim host as local processes), under a closed-loop load; a
whole simulated host is powered off (its replicas die) and a replica process is killed. The healer sees
it through ZooKeeper and the processes, a replacement is placed in a free failure domain and serves
within the reconcile interval, and at the end no acknowledged write is lost and the history is
linearizable."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.helpers import assert_invariants, small_dc
from ha_jobs.kit import replicas, run
from ha_jobs.verify import (
    PROGRAM,
    acknowledged,
    linearizable,
    lost_acknowledged_writes,
    replica_log_tail,
    start_load,
    wait_for,
)
from tropic.drivers import SimDriver
from tropic.jobs.healer import JobHealer
from tropic.jobs.observe import JobZooKeeper
from tropic.model import project
from tropic.service.jobs import heal_interval
from tropic.txn import Controller, State

RECONCILE_INTERVAL_S = 30.0  # tropic serve's default: a replacement must serve within it


@pytest.fixture
def world(zk_uri: str) -> Iterator[tuple[Controller, SimDriver, JobHealer]]:
    model = small_dc(hosts=3)
    sim = SimDriver(seed=1)
    sim.load(project(model))
    ctl = Controller(model, sim, workers=4).start()
    healer = JobHealer(ctl, zk=JobZooKeeper(zk_uri), interval=heal_interval(RECONCILE_INTERVAL_S)).start()
    try:
        yield ctl, sim, healer
    finally:
        healer.stop()
        ctl.stop()
        sim.processes.kill_all()


def serving(healer: JobHealer, job: str, names: set[str] | None = None) -> dict[str, Any] | None:
    h = healer.snapshot(job)["health"].get(job)
    if h is None:
        return None
    up = {r["name"] for r in h["replicas"] if r["health"] == "serving"}
    want = names if names is not None else {r["name"] for r in h["replicas"]}
    return h if want and want <= up and len(up) == len(h["replicas"]) else None


def create_kv(ctl: Controller, zk_uri: str, domain: str = "host") -> None:
    t = run(
        ctl,
        "create_job",
        {"name": "kv", "program": json.dumps(PROGRAM), "replicas": 3, "failure_domain": domain, "zk": zk_uri},
    )
    assert t.state is State.COMMITTED, t.error


@pytest.mark.parametrize("kill", ["host", "process"])
def test_killed_replicas_are_replaced_and_no_acknowledged_write_is_lost(
    world: tuple[Controller, SimDriver, JobHealer], zk_uri: str, kill: str
) -> None:
    ctl, sim, healer = world
    create_kv(ctl, zk_uri, domain="rack")
    try:
        wait_for(lambda: serving(healer, "kv"), 120, "three serving replicas")
        load = start_load(zk_uri, "kv")
        load.wait_more(100)
        before = replicas(ctl, "kv")
        victim_name = "kv-1"
        victim_host = before[victim_name]
        t0 = time.monotonic()
        if kill == "host":
            killed = sim.fail_host(victim_host)
            assert f"/jobs/kv/{victim_name}" in killed
        else:
            sim.processes.kill(f"/jobs/kv/{victim_name}")
        # the replacement: placed elsewhere (a free rack), serving, within the reconcile interval
        wait_for(lambda: "kv-4" in replicas(ctl, "kv"), RECONCILE_INTERVAL_S, "the replacement of kv-1")
        wait_for(
            lambda: serving(healer, "kv", {"kv-2", "kv-3", "kv-4"}), RECONCILE_INTERVAL_S, "kv-4 serving"
        )
        took = time.monotonic() - t0
        assert took < RECONCILE_INTERVAL_S
        after = replicas(ctl, "kv")
        assert victim_name not in after and len(after) == 3
        if kill == "host":
            assert victim_host not in after.values()
        load.wait_more(100)  # the job goes on serving
        history = load.finish()
        figures = {
            "kill": kill,
            "replacement_serving_s": round(took, 2),
            "max_gap_s": round(load.max_gap(), 3),
        }
        print(json.dumps(figures))
    except BaseException:
        print(replica_log_tail(sim.processes.run_dir))
        raise
    assert acknowledged(history) >= 200
    assert lost_acknowledged_writes(zk_uri, "kv", history) == []
    assert linearizable(history) is True
    events = [e["kind"] for e in healer.snapshot("kv")["events"]]
    assert "replica-dead" in events and "replaced" in events
    assert_invariants(ctl)
    assert run(ctl, "delete_job", {"job": "kv"}).state is State.COMMITTED
    assert sim.replica_processes() == {}
