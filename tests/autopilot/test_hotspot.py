"""The hot-spot relief policy on plain snapshots: its moves never pick a stale, cordoned or powered-off
host or one without room, never push a destination above the headroom, never touch a stale VM or one of
unknown demand, stay within the budget, and leave no relievable host hot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.autopilot.base import HostState, PolicyError, Snapshot, VMState
from tropic.autopilot.policies import POLICIES, make_policy, parse_policies
from tropic.autopilot.policies.hotspot import HotspotRelief


def fleet(
    hosts: list[dict[str, bool]], vms: list[tuple[int, float | None, int]], stale: set[str]
) -> Snapshot:
    hs: dict[str, HostState] = {}
    vs: dict[str, VMState] = {}
    for i, h in enumerate(hosts):
        path = f"/compute/r1/h{i}"
        mine = [f"{path}/v{j}" for j, (host, _, _) in enumerate(vms) if host == i]
        hs[path] = HostState(
            path,
            "r1",
            16,
            32768,
            cordoned=h.get("cordoned", False),
            powered=h.get("powered", True),
            vms=tuple(mine),
        )
    for j, (host, demand, mem) in enumerate(vms):
        path = f"/compute/r1/h{host}/v{j}"
        vs[path] = VMState(path, f"/compute/r1/h{host}", 2, mem, demand=demand)
    return Snapshot(0.0, hs, vs, frozenset(stale))


host_st = st.fixed_dictionaries({"cordoned": st.booleans(), "powered": st.booleans()})


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    n = draw(st.integers(2, 6))
    hosts = [dict(draw(host_st)) for _ in range(n)]
    vms = draw(
        st.lists(
            st.tuples(
                st.integers(0, n - 1),
                st.one_of(st.none(), st.floats(0.0, 8.0)),
                st.sampled_from([1024, 4096, 16384]),
            ),
            max_size=20,
        )
    )
    for h in range(n):  # a powered-off host holds no VM
        if not hosts[h]["powered"]:
            vms = [v for v in vms if v[0] != h]
    paths = [f"/compute/r1/h{i}" for i in range(n)] + [f"/compute/r1/h{v[0]}/v{j}" for j, v in enumerate(vms)]
    stale = set(draw(st.lists(st.sampled_from(paths), max_size=3))) if paths else set()
    return fleet(hosts, vms, stale)


def load(snap: Snapshot, moves: dict[str, str]) -> dict[str, tuple[float, int]]:
    out = {p: (0.0, 0) for p in snap.hosts}
    for v in snap.vms.values():
        host = moves.get(v.path, v.host)
        d, m = out[host]
        out[host] = (d + (v.demand or 0.0), m + v.memory_mib)
    return out


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.integers(0, 5))
def test_moves_respect_stale_cordons_power_memory_headroom_and_budget(snap: Snapshot, budget: int) -> None:
    p = HotspotRelief(threshold=0.9, headroom=0.8)
    plan = p.plan(snap, budget=budget, time_limit=1.0)
    assert len(plan.moves) <= budget
    moves = {m.vm: m.dest for m in plan.moves}
    after = load(snap, moves)
    for m in plan.moves:
        vm, dest = snap.vms[m.vm], snap.hosts[m.dest]
        assert m.vm not in snap.stale and vm.host not in snap.stale and vm.demand is not None
        assert m.dest not in snap.stale and dest.powered and not dest.cordoned and m.dest != vm.host
        assert after[m.dest][0] <= 0.8 * dest.cpus + 1e-6 and after[m.dest][1] <= dest.memory_mib
    before = load(snap, {})
    for h in {snap.vms[m].host for m in moves}:  # a host shed load only when it was hot
        assert before[h][0] > 0.9 * snap.hosts[h].cpus
    assert plan.gain >= 0 and plan.cost >= 0 and (plan.gain > 0) == bool(plan.moves)


def test_one_vm_that_suffices_is_preferred_to_several() -> None:
    snap = fleet([{}, {}], [(0, 7.0, 4096), (0, 7.0, 4096), (0, 2.0, 4096)], set())
    plan = HotspotRelief().plan(snap, budget=5, time_limit=1.0)
    assert [(m.vm, m.dest) for m in plan.moves] == [("/compute/r1/h0/v2", "/compute/r1/h1")]
    assert "relieve 1 hot host" in plan.why


def test_bad_settings_and_unknown_policies_are_one_clear_error() -> None:
    with pytest.raises(PolicyError, match=r"headroom 0\.95 must be in"):
        HotspotRelief(threshold=0.9, headroom=0.95)
    with pytest.raises(PolicyError, match=r"threshold 1\.5"):
        HotspotRelief(threshold=1.5)
    with pytest.raises(PolicyError, match=r"unknown autopilot policy .nope.; known: .*hotspot"):
        parse_policies("hotspot,nope")
    with pytest.raises(PolicyError, match="unknown autopilot policy"):
        make_policy("nope")
    assert parse_policies("hotspot") == ["hotspot"] and "hotspot" in POLICIES
