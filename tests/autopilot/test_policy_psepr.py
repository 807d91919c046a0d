"""The PsEPR service policy: as the candidates' load changes from snapshot to snapshot, the service is kept
at the optimum exhaustive search finds, with spawns and destroys only where the optimum changed; the
model's services read back as the snapshot's ServiceStates."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tropic.autopilot.base import HostState, Plan, PolicyError, ServiceState, Snapshot, VMState
from tropic.autopilot.policies import POLICIES
from tropic.autopilot.policies.psepr import PseprConfig, PseprPolicy, overlay_problem, read_services
from tropic.model.generate import host_path, image_path
from tropic.optimize.overlay import evaluate
from tropic.optimize.overlay_bruteforce import solve_overlay_bruteforce
from tropic.txn import Controller, State

REGIONS = ("na-east", "na-west", "europe", "asia")
SVC = "/services/overlay"
RTT = {"na-east|na-west": 70, "na-east|europe": 90, "na-east|asia": 180, "na-west|europe": 150}
RTT |= {"na-west|asia": 120, "europe|asia": 230}
CONFIG = PseprConfig(same_region_ms=20, region_rtt_ms=RTT)


def snapshot(
    loads: dict[str, float], members: tuple[str, ...], stale: frozenset[str] = frozenset()
) -> Snapshot:
    """One host per entry of ``loads`` (its non-member load in cores, as one VM); ``members``: VM paths."""
    hosts: dict[str, HostState] = {}
    vms: dict[str, VMState] = {}
    for i, (path, load) in enumerate(sorted(loads.items())):
        on = [f"{path}/work"]
        vms[on[0]] = VMState(path=on[0], host=path, vcpus=4, memory_mib=1024, demand=load)
        on += [m for m in members if m.startswith(path + "/")]
        for m in on[1:]:
            vms[m] = VMState(path=m, host=path, vcpus=1, memory_mib=512, demand=0.05)
        hosts[path] = HostState(
            path=path,
            region=REGIONS[i % 4],
            cpus=8,
            memory_mib=16384,
            vms=tuple(on),
            labels={"cpuspeed_ghz": "2.4"},
        )
    service = ServiceState(
        path=SVC,
        service_kind="psepr",
        image="/storage/r/san/img",
        vcpus=1,
        memory_mib=512,
        min_members=2,
        max_members=4,
        members=members,
    )
    return Snapshot(at=0.0, hosts=hosts, vms=vms, stale=stale, services={SVC: service})


def apply(members: tuple[str, ...], plan: Plan) -> tuple[str, ...]:
    kept = [m for m in members if m not in plan.destroys]
    return tuple(sorted([*kept, *(f"{s.host}/{s.name}" for s in plan.spawns)]))


def test_the_service_follows_the_optimum_as_load_changes() -> None:
    rng = random.Random(7)
    paths = [f"/compute/r{i % 4}/h{i:02d}" for i in range(12)]
    policy = POLICIES["psepr"]("overlay", same_region_ms=20, region_rtt_ms=RTT)
    members: tuple[str, ...] = ()
    changes = 0
    for step in range(8):
        loads = {p: round(rng.uniform(0, 4), 2) for p in paths}
        snap = snapshot(loads, members)
        plan = policy.plan(snap, budget=20, time_limit=20)
        problem = overlay_problem(snap, snap.services[SVC], CONFIG)
        truth = solve_overlay_bruteforce(problem)
        assert truth.evaluation is not None
        current = {snap.vms[m].host for m in members}
        added = {s.host for s in plan.spawns}
        removed = {snap.vms[d].host for d in plan.destroys}
        assert added.isdisjoint(current) and removed <= current
        chosen = (current - removed) | added
        assert evaluate(problem, sorted(chosen)).objective == truth.evaluation.objective, f"step {step}"
        assert plan.service == SVC and all(
            s.image == "/storage/r/san/img" and s.vcpus == 1 for s in plan.spawns
        )
        changes += bool(added or removed)
        members = apply(members, plan)
        # The same loads again (the members' own small load included): nothing more to change.
        again = policy.plan(snapshot(loads, members), budget=20, time_limit=20)
        problem = overlay_problem(snapshot(loads, members), snap.services[SVC], CONFIG)
        assert again.empty or evaluate(problem, sorted({m.rsplit("/", 1)[0] for m in members})).objective < (
            solve_overlay_bruteforce(problem).evaluation.objective  # type: ignore[union-attr]
        )
        if not again.empty:
            members = apply(members, again)
    assert changes >= 3  # the load changes moved the optimum several times


def test_the_budget_and_stale_members_leave_the_service_alone() -> None:
    paths = [f"/compute/r{i % 4}/h{i:02d}" for i in range(8)]
    loads = dict.fromkeys(paths, 0.5)
    plan = PseprPolicy("overlay", CONFIG).plan(snapshot(loads, ()), budget=1, time_limit=10)
    assert plan.empty and "over the budget" in plan.why
    members = (f"{paths[0]}/m",)
    plan = PseprPolicy("overlay", CONFIG).plan(
        snapshot(loads, members, stale=frozenset({paths[0]})), budget=10, time_limit=10
    )
    assert plan.empty and "stale" in plan.why


def test_bad_configuration_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="unknown option"):
        POLICIES["psepr"]("overlay", rtt=3)
    with pytest.raises(PolicyError, match="same_region_ms must be a non-negative number"):
        POLICIES["psepr"]("overlay", same_region_ms="fast")
    snap = snapshot({"/compute/r0/h00": 0.1}, ())
    with pytest.raises(PolicyError, match="no service"):
        PseprPolicy("other").plan(snap, budget=1, time_limit=1)
    bad = dataclasses.replace(snap, services={SVC: dataclasses.replace(snap.services[SVC], min_members=0)})
    with pytest.raises(PolicyError, match="min_members"):
        PseprPolicy("overlay").plan(bad, budget=1, time_limit=1)


def test_read_services_from_the_model(ctl: Controller) -> None:
    args = {"name": "overlay", "image": image_path("r1"), "vcpus": 1, "memory_mib": 512, "max_members": 3}
    assert ctl.wait(ctl.submit("create_service", args), 30).state is State.COMMITTED
    t = ctl.wait(
        ctl.submit("spawn_service_member", {"service": "overlay", "name": "m", "host": host_path("r1", 1)}),
        30,
    )
    assert t.state is State.COMMITTED, t.error
    services = ctl.call(lambda: read_services(ctl.model.reader()))
    state = services[SVC]
    assert state.members == (f"{host_path('r1', 1)}/m",) and state.max_members == 3
    assert state.service_kind == "psepr" and state.image == image_path("r1")
