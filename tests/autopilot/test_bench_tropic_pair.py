"""tropic's policy as the bench runs it: in MIPS units, hot-spot relief first, then consolidation; and the
consolidation's full model settles (proves its answer) on a fleet of many interchangeable empty hosts."""

from __future__ import annotations

from tropic.autopilot.base import HostState, Move, Plan, Snapshot, VMState
from tropic.autopilot.bench.tropic_pair import TropicAutopilot, _merge, in_mips
from tropic.autopilot.policies.consolidation import consolidate, make_consolidation
from tropic.autopilot.policies.hotspot import HotspotRelief

R = "/compute/r1"


def snapshot(placement: dict[str, list[tuple[str, float, float]]], empty: int) -> Snapshot:
    """``placement``: host -> [(vm, MIPS rating, utilisation)]; plus ``empty`` switched-off hosts. Hosts
    have 2 cores of 2,660 MIPS (CloudSim's G5), no memory bound."""
    hosts: dict[str, HostState] = {}
    vms: dict[str, VMState] = {}
    names = [*placement, *(f"e{i:03d}" for i in range(empty))]
    for name in names:
        path = f"{R}/{name}"
        on = placement.get(name, [])
        for vm, mips, util in on:
            vms[f"{path}/{vm}"] = VMState(
                path=f"{path}/{vm}",
                host=path,
                vcpus=1,
                memory_mib=0,
                uid=vm,
                demand=util,
                labels={"mips": f"{mips:g}"},
            )
        hosts[path] = HostState(
            path=path,
            region="r1",
            cpus=2,
            memory_mib=4096,
            cpu_overcommit=64.0,
            vms=tuple(f"{path}/{vm}" for vm, _, _ in on),
            labels={"mips_per_cpu": "2660"},
            powered=bool(on),
        )
    return Snapshot(at=0.0, hosts=hosts, vms=vms)


def pair() -> TropicAutopilot:
    return TropicAutopilot(HotspotRelief(threshold=0.9, headroom=0.8), make_consolidation(headroom=0.8))


def test_in_mips_counts_cpus_and_demand_in_hundreds_of_mips() -> None:
    snap = in_mips(snapshot({"a": [("v1", 2500.0, 0.5)]}, empty=1))
    assert snap.hosts[f"{R}/a"].cpus == 53  # 2 x 2,660 MIPS
    assert snap.vms[f"{R}/a/v1"].demand == 12.5  # half of 2,500 MIPS


def test_a_hot_host_is_relieved_onto_a_switched_off_one() -> None:
    # 2 x 2,500 MIPS at 100% on one 5,320 MIPS host: over the 0.9 threshold; nothing powered has room.
    snap = snapshot({"a": [("v1", 2500.0, 1.0), ("v2", 2500.0, 1.0)]}, empty=3)
    plan = pair().plan(snap, budget=10, time_limit=5.0)
    assert len(plan.moves) == 1 and plan.moves[0].dest.startswith(f"{R}/e")


def test_lightly_loaded_hosts_are_consolidated() -> None:
    snap = snapshot({h: [(f"v{h}", 1000.0, 0.2)] for h in ("a", "b", "c", "d")}, empty=2)
    plan = pair().plan(snap, budget=10, time_limit=5.0)
    assert len(plan.moves) == 3 and len({m.dest for m in plan.moves}) == 1


def test_the_full_model_proves_its_answer_among_many_empty_hosts() -> None:
    # Three VMs of 22 cpus (2,200 MIPS) on three hosts of 42.4 within the headroom: the lower bound on hosts
    # (by total demand) is two, no two fit together: the full model (with only as many of the 60
    # interchangeable empty hosts as a better placement could use) proves three optimal.
    snap = in_mips(snapshot({h: [(f"v{h}", 2500.0, 0.88)] for h in ("a", "b", "c")}, empty=60))
    result = consolidate(snap, budget=100, time_limit=120.0)
    assert result.plan.moves == () and result.method == "cp-sat"
    assert result.status in ("optimal", "infeasible"), result.plan.why


def test_relief_uses_a_powered_host_with_room_before_waking_one() -> None:
    # a is hot (2 x 2,500 MIPS at 100%); b is powered and lightly loaded: the shed VM goes to b, and no
    # switched-off host is woken.
    snap = snapshot({"a": [("v1", 2500.0, 1.0), ("v2", 2500.0, 1.0)], "b": [("v3", 500.0, 0.2)]}, empty=3)
    plan = pair().plan(snap, budget=10, time_limit=5.0)
    assert [m.dest for m in plan.moves] == [f"{R}/b"]
    assert plan.power_on == ()


def test_a_vm_moved_by_relief_and_consolidation_migrates_once() -> None:
    first = Plan("hotspot", moves=(Move(f"{R}/a/v1", f"{R}/e000"), Move(f"{R}/a/v2", f"{R}/b")), gain=1.0)
    second = Plan(
        "consolidation", moves=(Move(f"{R}/a/v1", f"{R}/c"),), power_off=(f"{R}/e000",), gain=1.0, cost=0.1
    )
    merged = _merge(first, second)
    assert [(m.vm, m.dest) for m in merged.moves] == [(f"{R}/a/v2", f"{R}/b"), (f"{R}/a/v1", f"{R}/c")]
    assert merged.power_off == (f"{R}/e000",)  # nothing of the first plan's stays there
    assert "moved by both" in merged.why


def test_every_plan_of_the_pair_moves_each_vm_at_most_once() -> None:
    # Hot hosts and light ones together: relief and consolidation both act; one move per VM at most.
    placement = {
        "a": [("v1", 2500.0, 1.0), ("v2", 2500.0, 0.95)],
        "b": [("v3", 2500.0, 1.0), ("v4", 2000.0, 1.0)],
        "c": [("v5", 500.0, 0.1)],
        "d": [("v6", 1000.0, 0.1)],
    }
    plan = pair().plan(snapshot(placement, empty=4), budget=20, time_limit=5.0)
    vms = [m.vm for m in plan.moves]
    assert vms and len(vms) == len(set(vms))


def test_with_a_percentile_a_vm_is_judged_by_its_recent_readings_never_later_ones() -> None:
    p = TropicAutopilot(HotspotRelief(), make_consolidation(), percentile=100.0)
    demand = [0.2, 0.9] + [0.1] * 12
    seen = []
    for util in demand:
        snap = p.predicted(snapshot({"a": [("v1", 1000.0, util)]}, empty=0))
        seen.append(snap.vms[f"{R}/a/v1"].demand)
    assert seen[0] == 0.2  # only what it has been given so far
    assert seen[1:13] == [0.9] * 12  # the 0.9 stays the p100 for 12 readings (an hour of passes)
    assert seen[13] == 0.1  # then leaves the window
    plain = TropicAutopilot(HotspotRelief(), make_consolidation())
    snap = snapshot({"a": [("v1", 1000.0, 0.3)]}, empty=0)
    assert plain.predicted(snap) is snap  # without a percentile: the reading now
