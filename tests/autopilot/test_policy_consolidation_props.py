"""Properties of every consolidation plan on random fleets, checked from the snapshot alone (not through the
policy's own bookkeeping): capacity, headroom, cordons, stale pins, regions, anti-affinity and the budget
hold; applying the plan never increases the number of active hosts; an impossible headroom is a
PolicyError."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.autopilot.base import HostState, Plan, PolicyError, Snapshot, VMState
from tropic.autopilot.policies.consolidation import ConsolidationConfig, consolidate

GIB = 1024


@st.composite
def fleets(draw: st.DrawFn) -> Snapshot:
    n_hosts = draw(st.integers(1, 6))
    hosts: dict[str, HostState] = {}
    for i in range(n_hosts):
        path = f"/compute/r1/h{i}"
        hosts[path] = HostState(
            path=path,
            region=draw(st.sampled_from(["r1", "r1", "r2"])),
            cpus=draw(st.sampled_from([4, 8, 16])),
            memory_mib=draw(st.sampled_from([8, 16, 32])) * GIB,
            cpu_overcommit=draw(st.sampled_from([1.0, 2.0, 4.0])),
            failure_domain=draw(st.sampled_from(["", "rack0", "rack1"])),
            cordoned=draw(st.booleans()) and draw(st.booleans()),
            powered=draw(st.booleans()) or draw(st.booleans()),
        )
    vms: dict[str, VMState] = {}
    powered = [p for p, h in hosts.items() if h.powered]
    for j in range(draw(st.integers(0, 12)) if powered else 0):
        host = draw(st.sampled_from(powered))
        vcpus = draw(st.integers(1, 4))
        utilisation = draw(st.one_of(st.none(), st.floats(0, 1)))
        demand = None if utilisation is None else round(utilisation * vcpus, 2)
        labels = {}
        if draw(st.booleans()) and draw(st.booleans()):
            labels["anti_affinity"] = draw(st.sampled_from(["db", "web"]))
        path = f"{host}/vm{j}"
        vms[path] = VMState(
            path=path,
            host=host,
            vcpus=vcpus,
            memory_mib=draw(st.integers(1, 6)) * GIB,
            demand=demand,
            labels=labels,
        )
    subjects = sorted(hosts) + sorted(vms)
    stale = frozenset(draw(st.lists(st.sampled_from(subjects), max_size=3)) if subjects else [])
    return Snapshot(at=0.0, hosts=hosts, vms=vms, stale=stale)


def _after(snap: Snapshot, plan: Plan) -> dict[str, str]:
    where = {p: vm.host for p, vm in snap.vms.items()}
    for move in plan.moves:
        where[move.vm] = move.dest
    return where


def _domain(h: HostState) -> str:
    return h.failure_domain or h.path


@settings(max_examples=120)
@given(fleets(), st.integers(0, 6), st.sampled_from([0.5, 0.8, 1.0]))
def test_every_plan_keeps_every_rule(snap: Snapshot, budget: int, headroom: float) -> None:
    config = ConsolidationConfig(headroom=headroom)
    try:
        result = consolidate(snap, budget=budget, time_limit=20, config=config)
    except PolicyError as e:
        assert "cannot fit" in e.message or "need" in e.message
        demand = sum(vm.demand or 0 for vm in snap.vms.values())
        memory = sum(vm.memory_mib for vm in snap.vms.values())
        assert demand > headroom * sum(h.cpus for h in snap.hosts.values()) or memory > sum(
            h.memory_mib for h in snap.hosts.values()
        )
        return
    plan = result.plan
    assert len(plan.moves) <= budget
    assert len({m.vm for m in plan.moves}) == len(plan.moves)
    where = _after(snap, plan)
    received = {m.dest for m in plan.moves}
    for move in plan.moves:
        vm = snap.vms[move.vm]
        assert move.dest != vm.host
        assert vm.demand is not None, "a VM of unknown demand moved"
        assert move.vm not in snap.stale and vm.host not in snap.stale, "a stale VM or host's VM moved"
        dest = snap.hosts[move.dest]
        assert not dest.cordoned and move.dest not in snap.stale
        assert dest.region == snap.hosts[vm.host].region, "a VM left its region"
    for path in received:
        host = snap.hosts[path]
        on = [snap.vms[v] for v, h in where.items() if h == path]
        assert all(vm.demand is not None and vm.path not in snap.stale for vm in on)
        assert sum(vm.demand or 0 for vm in on) <= headroom * host.cpus + 1e-9
        assert sum(vm.memory_mib for vm in on) <= host.memory_mib
        assert sum(vm.vcpus for vm in on) <= int(host.cpus * host.cpu_overcommit)
    for label in ("db", "web"):
        members = [p for p, vm in snap.vms.items() if vm.labels.get("anti_affinity") == label]
        if len(members) < 2:
            continue
        before = Counter(_domain(snap.hosts[snap.vms[p].host]) for p in members)
        after = Counter(_domain(snap.hosts[where[p]]) for p in members)
        for domain, n in after.items():
            assert n <= max(1, before[domain]), f"anti-affinity {label} in {domain}"
    # power changes: only emptied (or idle) hosts go off; only hosts that receive go on
    occupied = set(where.values())
    for path in plan.power_off:
        assert snap.hosts[path].powered and path not in occupied and path not in snap.stale
    for path in plan.power_on:
        assert not snap.hosts[path].powered and path in received
    # applying the plan never increases the number of active (powered, non-empty) hosts
    active_before = {
        h.path for h in snap.hosts.values() if h.powered and any(v.host == h.path for v in snap.vms.values())
    }
    active_after = {p for p in occupied if snap.hosts[p].powered or p in plan.power_on}
    assert len(active_after) <= len(active_before)
    if not plan.empty:
        assert plan.gain > plan.cost


@settings(max_examples=40)
@given(fleets(), st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0001, max_value=1e6)))
def test_an_impossible_headroom_always_raises(snap: Snapshot, headroom: float) -> None:
    with pytest.raises(PolicyError, match="impossible headroom"):
        consolidate(snap, budget=3, time_limit=5, config=ConsolidationConfig(headroom=headroom))


@settings(max_examples=60)
@given(fleets())
def test_stale_vms_never_move(snap: Snapshot) -> None:
    try:
        plan = consolidate(snap, budget=20, time_limit=20).plan
    except PolicyError:
        return
    for move in plan.moves:
        assert move.vm not in snap.stale
        assert snap.vms[move.vm].host not in snap.stale
