"""Self-healing without ZooKeeper (the sim's processes tell life from death): a killed replica process and
every replica of a failed host are replaced by transactions, in a free distinct domain; a program that
exits at once is reported crash-looping and restarted with exponential backoff, never in a tight loop."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from core.helpers import assert_invariants, until
from ha_jobs.kit import domains, job_args, replicas, run, with_sleepers
from tropic.drivers import SimDriver
from tropic.jobs.healer import JobHealer
from tropic.model import Model, project
from tropic.txn import Controller, State


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jobs_sim(sim: SimDriver) -> Iterator[SimDriver]:
    with_sleepers(sim)
    yield sim
    sim.processes.kill_all()


@pytest.fixture
def jctl(model: Model, jobs_sim: SimDriver) -> Iterator[Controller]:
    c = Controller(model, jobs_sim, workers=4).start()
    yield c
    c.stop()


def test_a_killed_replica_is_replaced_in_a_free_domain(jctl: Controller, jobs_sim: SimDriver) -> None:
    assert run(jctl, "create_job", job_args(replicas=3, domain="rack")).state is State.COMMITTED
    healer = JobHealer(jctl)
    assert healer.heal_once()["kv"].status == "healthy"
    before = replicas(jctl, "kv")
    jobs_sim.processes.kill("/jobs/kv/kv-2")
    until(lambda: not jobs_sim.replica_processes()["/jobs/kv/kv-2"]["alive"], "kv-2 dead")
    health = healer.heal_once()["kv"]
    after = replicas(jctl, "kv")
    assert "kv-2" not in after and "kv-4" in after
    assert {k: v for k, v in after.items() if k != "kv-4"} == {k: v for k, v in before.items() if k != "kv-2"}
    doms = domains(jctl, "kv", "rack")
    assert len(set(doms)) == 3
    assert jobs_sim.replica_processes()["/jobs/kv/kv-4"]["alive"]
    assert "/jobs/kv/kv-2" not in jobs_sim.replica_processes()
    assert any(e["kind"] == "replica-dead" and "kv-2" in e["message"] for e in healer.events)
    assert health.replacements == 1
    assert healer.heal_once()["kv"].status == "healthy"
    assert_invariants(jctl)


def test_a_failed_host_loses_its_replicas_and_they_are_placed_elsewhere(
    jctl: Controller, jobs_sim: SimDriver
) -> None:
    assert run(jctl, "create_job", job_args(replicas=2, domain="host", region="r1")).state is State.COMMITTED
    assert run(jctl, "create_job", job_args(name="q", replicas=2, domain="host", region="r1")).state is (
        State.COMMITTED
    )
    healer = JobHealer(jctl)
    healer.heal_once()
    victim = replicas(jctl, "kv")["kv-1"]
    on_victim = [p for p, s in jobs_sim.replica_processes().items() if s["host"] == victim]
    killed = jobs_sim.fail_host(victim)
    assert sorted(killed) == sorted(on_victim) and killed
    healer.heal_once()
    for job in ("kv", "q"):
        hosts = list(replicas(jctl, job).values())
        assert victim not in hosts, (job, hosts)
        assert len(set(hosts)) == 2
    procs = jobs_sim.replica_processes()
    assert all(s["alive"] for s in procs.values()) and len(procs) == 4
    assert all(h.status == "healthy" for h in healer.heal_once().values())
    assert_invariants(jctl)


def exits_at_once(args: Mapping[str, Any]) -> list[str]:
    return [sys.executable, "-c", "import sys; print('no such config'); sys.exit(3)"]


def test_a_program_that_exits_at_once_backs_off_and_is_reported(
    jctl: Controller, jobs_sim: SimDriver
) -> None:
    jobs_sim.processes.launcher = exits_at_once
    assert run(jctl, "create_job", job_args(replicas=1)).state is State.COMMITTED
    clock = FakeClock()
    healer = JobHealer(jctl, clock=clock, backoff_s=1.0, max_backoff_s=8.0)
    starts: list[int] = []

    def dead() -> bool:
        return all(not s["alive"] for s in jobs_sim.replica_processes().values())

    delays = []
    for _ in range(6):
        until(dead, "the replica exited")
        h = healer.heal_once()["kv"]
        starts.append(h.replacements)
        delays.append(h.next_start_in_s)
        # within the backoff nothing more is started, however often the healer looks
        for _ in range(5):
            assert healer.heal_once()["kv"].replacements == h.replacements
        clock.now += h.next_start_in_s
    assert starts == [1, 2, 3, 4, 5, 6]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # exponential, capped
    h = healer.heal_once()["kv"]
    assert h.status == "crash-looping"
    assert "exited with code 3" in h.message and "no such config" in h.message
    assert any(e["kind"] == "crash-loop" for e in healer.events)
    assert_invariants(jctl)


def test_the_healer_thread_replaces_a_dead_replica_by_itself(jctl: Controller, jobs_sim: SimDriver) -> None:
    assert run(jctl, "create_job", job_args(replicas=2)).state is State.COMMITTED
    healer = JobHealer(jctl, interval=0.05).start()
    try:
        jobs_sim.processes.kill("/jobs/kv/kv-1")
        until(lambda: "kv-3" in replicas(jctl, "kv"), "the replacement of kv-1")
        until(lambda: healer.snapshot("kv")["health"].get("kv", {}).get("status") == "healthy", "healthy")
    finally:
        healer.stop()
    assert_invariants(jctl)


def test_a_job_being_changed_is_not_judged_halfway(model: Model) -> None:
    """While a transaction starts the replicas (the model says running, the processes are not there
    yet), the healer leaves the job alone: it would otherwise replace replicas that are being born."""
    sim = with_sleepers(SimDriver(seed=1, latency={"run_replica": 0.3}))
    sim.load(project(model))
    c = Controller(model, sim, workers=4).start()
    try:
        healer = JobHealer(c)
        t = c.submit("create_job", job_args(replicas=3))
        until(lambda: c.get(t.id).state is State.STARTED, "the creation started")
        assert healer.heal_once()["kv"].status == "changing"
        assert c.wait(t, 60).state is State.COMMITTED
        assert healer.heal_once()["kv"].status == "healthy"
        assert list(healer.events) == []  # nothing judged dead, nothing replaced
        assert sorted(replicas(c, "kv")) == ["kv-1", "kv-2", "kv-3"]
    finally:
        c.stop()
        sim.processes.kill_all()


def test_only_the_backend_of_a_replicas_host_says_whether_its_process_lives(model: Model) -> None:
    """Behind a router, a replica counts as gone for want of a process only on a host the sim drives
    (a libvirt host's replica is its domain: the sim has no process to show for it)."""
    from tropic.drivers.router import RouterDriver

    router = RouterDriver(SimDriver(seed=1)).bind(model)
    assert router.runs_replicas_on("/compute/r1/host-01")
    assert not router.runs_replicas_on("/compute/r9/host-99")  # no backend drives it
