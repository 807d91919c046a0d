"""``tropic ha bench`` on a real cluster: its own 3-server ZooKeeper ensemble
(:mod:`tropic.cluster.zk_ensemble`), a controller on the sim whose hosts run the replicas as local
processes (the replica wrapper around ``examples/ha/kv.py``), the job declared by a ``create_job``
transaction, and the healer (:mod:`tropic.jobs.healer`) that replaces each dead replica by a transaction.
The bench only kills (a replica's process, or its whole simulated host); it never starts a replica. The
figures are :func:`tropic.ha.bench.report`'s."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tropic.cluster.zk_ensemble import ZooKeeperEnsemble, ZooKeeperHarnessError
from tropic.drivers import SimDriver
from tropic.errors import TropicError
from tropic.ha.bench import (
    JOB,
    BenchFailed,
    BenchSpec,
    ReplicaWatch,
    RunRecord,
    Say,
    baseline,
    default_program,
    report,
    wait_until,
)
from tropic.ha.client import HAClient
from tropic.ha.contract import READ_PATH_ENV
from tropic.ha.load import KillEvent, KillScheduler, KVWire, LoadGenerator, Record
from tropic.jobs.healer import JobHealer
from tropic.jobs.observe import JobZooKeeper
from tropic.model import project
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.txn import Controller, State

__all__ = ["run_bench"]

# The healer's pass interval, as ``tropic serve`` runs it (tropic.service.jobs.heal_interval): besides
# these passes, a change of the job's replica nodes in ZooKeeper wakes it at once.
HEAL_INTERVAL_S = 1.0


class _Victims:
    """The kill target: the job's live replica processes on the sim, or the hosts that run them."""

    def __init__(self, sim: Any, kill: str) -> None:
        self.sim = sim
        self.kill_kind = kill

    def _alive(self) -> dict[str, str]:
        prefix = f"/jobs/{JOB}/"
        return {
            path: str(s["host"])
            for path, s in self.sim.processes.status().items()
            if path.startswith(prefix) and s["alive"]
        }

    def victims(self) -> list[str]:
        alive = self._alive()
        return sorted(set(alive.values())) if self.kill_kind == "host" else sorted(alive)

    def kill(self, victim: str) -> dict[str, Any]:
        if self.kill_kind == "host":
            killed = self.sim.fail_host(victim)
            return {"host": victim, "replicas": [k.rsplit("/", 1)[-1] for k in killed]}
        host = self._alive().get(victim, "")
        self.sim.processes.kill(victim)
        return {"host": host, "replicas": [victim.rsplit("/", 1)[-1]]}


def replicated(spec: BenchSpec, program: Sequence[str], say: Say) -> tuple[RunRecord, ReplicaWatch]:
    """The job on a real ensemble and controller, the load, the kills; returns what was recorded."""
    out = RunRecord()
    base = Path(tempfile.mkdtemp(prefix="tropic-ha-bench-"))
    ensemble: ZooKeeperEnsemble | None = None
    if spec.zk_uri:
        zk_uri = spec.zk_uri
    else:
        say("starting a 3-server ZooKeeper ensemble")
        try:
            ensemble = ZooKeeperEnsemble(base / "zk", size=3, force_sync=False)
            ensemble.start_all()
        except ZooKeeperHarnessError as e:
            if ensemble is not None:
                ensemble.close()
            shutil.rmtree(base, ignore_errors=True)
            raise BenchFailed(f"ZooKeeper: {e}") from None
        zk_uri = ensemble.uri("/tropic-ha-bench")
    # Enough hosts that every kill of a host leaves a free one for the replacement.
    hosts = spec.replicas + (spec.kills if spec.kill == "host" else 0) + 1
    model = build_datacenter(DatacenterSpec(regions=("r1",), hosts_per_region=hosts))
    sim = SimDriver(seed=spec.seed, state_file=base / "devices.json")
    sim.load(project(model))
    ctl = Controller(model, sim, workers=4).start()
    jobs_zk = JobZooKeeper(zk_uri)
    watch_zk = JobZooKeeper(zk_uri)
    events: list[dict[str, Any]] = []  # every healer event (its own list keeps only the newest)

    def heard(e: dict[str, Any]) -> None:
        if len(events) < 500:
            events.append(e)

    healer = JobHealer(ctl, zk=jobs_zk, interval=HEAL_INTERVAL_S, on_event=heard).start()
    t0 = time.monotonic()
    watch = ReplicaWatch(watch_zk, lambda: time.monotonic() - t0)
    clients: list[HAClient] = []
    try:
        say(f"declaring job {JOB!r}: {spec.replicas} replicas, one per {spec.failure_domain}")
        args = {
            "name": JOB,
            "program": json.dumps(list(program)),
            "replicas": spec.replicas,
            "failure_domain": spec.failure_domain,
            "zk": zk_uri,
        }
        txn = ctl.wait(ctl.submit("create_job", args), 120)
        if txn.state is not State.COMMITTED:
            raise BenchFailed(f"create_job {JOB!r} did not commit: {txn.error}")
        watch.start()
        wait_until(
            lambda: len(watch.serving_now()) >= spec.replicas, 120, f"{spec.replicas} serving replicas"
        )
        out.initial = set(watch.serving_now())
        clients = [
            HAClient(zk_uri, JOB, timeout=spec.client_timeout, attempt_timeout=spec.attempt_timeout)
            for _ in range(spec.clients)
        ]
        load = LoadGenerator(
            [(f"c{i}", c) for i, c in enumerate(clients)],
            keys=spec.keys,
            write_ratio=spec.write_ratio,
            seed=spec.seed,
        )
        victims = _Victims(sim, spec.kill)

        def killed(e: KillEvent) -> None:
            say(f"{e.at:6.1f} s: killed {spec.kill} {e.victim} ({', '.join(e.detail.get('replicas', []))})")

        sched = KillScheduler(
            victims, spec.kill_every, clock=load.now, seed=spec.seed, on_kill=killed, until=spec.duration
        )
        say(
            f"load: {spec.clients} clients for {spec.duration:.0f} s, a {spec.kill} killed every "
            f"{spec.kill_every:.0f} s"
        )
        load.start()
        watch.clock = load.now  # replica times on the load's clock, like the kills
        sched.start()
        time.sleep(spec.duration)
        sched.stop()
        load.stop(timeout=spec.client_timeout + 30)
        out.records = load.records
        out.kills = list(sched.events)
        out.kill_errors = list(sched.errors)
        out.failovers = sum(c.failovers for c in clients)
        say("waiting for every replica to serve again")

        def healed() -> bool:
            health = healer.snapshot(JOB)["health"].get(JOB)
            states = [r["health"] for r in health["replicas"]] if health else []
            return len(states) == spec.replicas and all(s == "serving" for s in states)

        try:
            wait_until(healed, spec.heal_timeout, "every replica serving")
            out.healed = True
        except BenchFailed as e:
            say(str(e))
        say("reading every key back")
        reader = clients[0]
        for key in load.keys:
            call = load.now()
            reply = reader.call(KVWire().request("get", key, None), read=True)
            value = KVWire().value(reply)
            out.final[key] = value
            out.final_records.append(Record("final", "get", key, call, load.now(), value))
        wall0 = time.time() - load.now()  # the events' wall-clock times on the load's clock
        out.events = [
            {"at_s": round(float(e["time"]) - wall0, 3), "kind": e["kind"], "message": e["message"]}
            for e in list(events)
        ]
        out.failed_transactions = [
            {"id": t.id, "procedure": t.procedure, "state": t.state.value, "error": t.error}
            for t in ctl.transactions()
            if t.state is not State.COMMITTED
        ]
        return out, watch
    finally:
        watch.stop()
        for c in clients:
            c.close()
        healer.stop()
        with contextlib.suppress(TropicError):
            ctl.wait(ctl.submit("delete_job", {"job": JOB}), 60)
        sim.processes.kill_all()
        ctl.stop()
        sim.close()
        watch_zk.close()
        if ensemble is not None:
            ensemble.close()
        shutil.rmtree(base, ignore_errors=True)


def run_bench(spec: BenchSpec, say: Say = lambda _m: None) -> dict[str, Any]:
    """The baseline, then the replicated run under kills; the report (see :func:`tropic.ha.bench.report`)."""
    spec.validate()
    program = list(spec.program) or default_program()
    base = baseline(spec, program, say)
    # the replicas the controller starts (and the healer's replacements) inherit the read path
    saved = os.environ.get(READ_PATH_ENV)
    os.environ[READ_PATH_ENV] = spec.read_path
    try:
        run, watch = replicated(spec, program, say)
    finally:
        if saved is None:
            os.environ.pop(READ_PATH_ENV, None)
        else:
            os.environ[READ_PATH_ENV] = saved
    return report(spec, program, base, run, watch, say)
