"""Placing a replicated job: its replicas land in distinct failure domains (host, rack, region), chosen
in simulation with the fit rule, respecting capacity, cordons and power; a job whose replicas cannot be
placed in distinct domains is refused by the constraint ``Job.replicas_in_distinct_domains``, naming it;
a failed replica start rolls the whole job back (no VM, no process, no record)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.helpers import assert_invariants
from ha_jobs.kit import domains, job_args, replicas, run, with_sleepers
from tropic.drivers import SimDriver
from tropic.drivers.sim_faults import Fault
from tropic.model import STANDARD, ComputeRoot, Host, Model, Region, project
from tropic.txn import Controller, State


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


@pytest.mark.parametrize("level", ["host", "rack", "region"])
def test_replicas_land_in_distinct_domains_and_their_processes_run(
    jctl: Controller, jobs_sim: SimDriver, level: str
) -> None:
    n = {"host": 3, "rack": 4, "region": 2}[level]  # small_dc: 2 regions, 4 racks, 6 hosts
    t = run(jctl, "create_job", job_args(replicas=n, domain=level))
    assert t.state is State.COMMITTED, t.error
    doms = domains(jctl, "kv", level)
    assert len(doms) == n and len(set(doms)) == n
    procs = jobs_sim.replica_processes()
    assert sorted(procs) == sorted(f"/jobs/kv/{r}" for r in replicas(jctl, "kv"))
    assert all(p["alive"] for p in procs.values())
    assert all(procs[f"/jobs/kv/{r}"]["host"] == h for r, h in replicas(jctl, "kv").items())
    assert_invariants(jctl)  # the replicas' VMs are on the devices as in the model

    t = run(jctl, "delete_job", {"job": "kv"})
    assert t.state is State.COMMITTED, t.error
    assert jobs_sim.replica_processes() == {}
    assert jobs_sim.list_vms() == []
    assert_invariants(jctl)


def test_a_job_that_cannot_have_distinct_domains_is_refused_naming_the_constraint(
    jctl: Controller, jobs_sim: SimDriver
) -> None:
    t = run(jctl, "create_job", job_args(replicas=5, domain="rack"))  # 4 racks
    assert t.state is State.ABORTED and t.violation is not None
    assert t.violation.constraint == "Job.replicas_in_distinct_domains"
    assert "distinct racks" in t.violation.message
    t = run(jctl, "create_job", job_args(replicas=3, domain="region"))  # 2 regions
    assert t.state is State.ABORTED and t.violation is not None
    assert t.violation.constraint == "Job.replicas_in_distinct_domains"
    assert jobs_sim.replica_processes() == {} and jobs_sim.list_vms() == []
    assert_invariants(jctl)


def test_cordoned_hosts_and_capacity_are_respected(jctl: Controller) -> None:
    for h in ("/compute/r1/host-01", "/compute/r2/host-02"):
        assert run(jctl, "cordon_host", {"host": h}).state is State.COMMITTED
    t = run(jctl, "create_job", job_args(replicas=4, domain="host", memory_mib=16384))
    assert t.state is State.COMMITTED, t.error
    hosts = set(replicas(jctl, "kv").values())
    assert hosts.isdisjoint({"/compute/r1/host-01", "/compute/r2/host-02"})
    # every other host is now full: a fifth whole-host replica fits nowhere, and says why
    t = run(jctl, "create_job", job_args(name="big", replicas=1, memory_mib=16384))
    assert t.state is State.ABORTED and t.error is not None
    assert "no host" in t.error["message"] and "2 cordoned" in t.error["message"]
    assert_invariants(jctl)


def test_a_failed_replica_start_rolls_the_job_back(jctl: Controller, jobs_sim: SimDriver) -> None:
    jobs_sim.inject(Fault(action="run_replica", nth=3))  # the third replica's process fails to start
    t = run(jctl, "create_job", job_args(replicas=3))
    assert t.state is State.ABORTED, t.error
    assert jobs_sim.replica_processes() == {}  # the first two were stopped again
    assert jobs_sim.list_vms() == []
    assert replicas(jctl, "kv") == {}
    assert_invariants(jctl)
    jobs_sim.clear_faults()
    assert run(jctl, "create_job", job_args(replicas=3)).state is State.COMMITTED


def test_a_replica_on_a_powered_off_host_cannot_start(jctl: Controller, jobs_sim: SimDriver) -> None:
    for i in (1, 2, 3):  # every host but r2's is down behind the controller's back
        jobs_sim.fail_host(f"/compute/r1/host-0{i}")
    t = run(jctl, "create_job", job_args(replicas=3, region="r1"))
    assert t.state is State.ABORTED and t.error is not None
    assert "powered off" in t.error["message"]
    assert jobs_sim.replica_processes() == {}
    assert_invariants(jctl)


def test_bad_job_declarations_are_refused_naming_the_job(jctl: Controller) -> None:
    cases = [
        (job_args(domain="zone"), "failure domain must be one of host, rack, region"),
        (job_args(replicas=0), "replicas must be at least 1"),
        (job_args(program="[1, 2]"), "program: not a JSON array of strings"),
        (job_args(program=""), "program must be a non-empty list"),
        (job_args(zk=""), "no ZooKeeper for the job's request log"),
        (job_args(name="Bad_Name"), "name"),
    ]
    for args, message in cases:
        try:
            t = run(jctl, "create_job", args)
        except Exception as e:  # refused before any transaction (argument validation)
            assert message in str(e), (args, e)
            continue
        assert t.state is State.ABORTED and t.error is not None, args
        assert message in t.error["message"], (args, t.error)
    assert run(jctl, "create_job", job_args()).state is State.COMMITTED
    t = run(jctl, "create_job", job_args())
    assert t.state is State.ABORTED and t.error is not None and "already exists" in t.error["message"]


# --- the invariant, over random fleets ------------------------------------------------------------------
@st.composite
def fleets(draw: st.DrawFn) -> tuple[Model, int, str]:
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    n_regions = draw(st.integers(1, 3))
    for r in range(n_regions):
        m.add(f"/compute/r{r}", Region)
        for h in range(draw(st.integers(1, 4))):
            m.add(
                f"/compute/r{r}/h{h}",
                Host,
                cpus=draw(st.integers(1, 4)),
                memory_mib=draw(st.sampled_from([512, 1024, 2048])),
                failure_domain=draw(st.sampled_from(["", f"r{r}-a", f"r{r}-b"])),
                cordoned=draw(st.booleans()),
                cpu_overcommit=1.0,
            )
    return m, draw(st.integers(1, 5)), draw(st.sampled_from(["host", "rack", "region"]))


@settings(max_examples=40)
@given(fleets(), st.sampled_from([1, 2]), st.sampled_from([512, 1024]))
def test_placements_never_share_a_domain(fleet: tuple[Model, int, str], vcpus: int, memory: int) -> None:
    """Committed: as many replicas as asked, each domain used once, each host within capacity.
    Refused: exactly when fewer domains than replicas have an open host that fits one replica."""
    from tropic.model.jobs import domain_of

    model, n, level = fleet
    sim = with_sleepers(SimDriver(seed=1))
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        t = run(c, "create_job", job_args(replicas=n, domain=level, vcpus=vcpus, memory_mib=memory))

        def fitting_domains() -> set[str]:
            v = model.reader()
            out = set()
            for r in v.get("/compute", ComputeRoot).children(Region):
                for h in r.children(Host):
                    if not h.cordoned and h.cpus >= vcpus and h.memory_mib >= memory:
                        out.add(domain_of(h, level))
            return out

        possible = len(c.call(fitting_domains)) >= n
        if t.state is State.COMMITTED:
            doms = domains(c, "kv", level)
            assert len(doms) == n and len(set(doms)) == n
            assert possible
        else:
            assert not possible, t.error
            assert t.error is not None
            assert t.error.get("constraint") == "Job.replicas_in_distinct_domains" or "no host" in str(
                t.error["message"]
            )
        assert_invariants(c)
    finally:
        c.stop()
        sim.processes.kill_all()
