"""The consolidation policy on hand-made fleets: each rule binds, bad configuration is a PolicyError, a
timed-out solve leaves the configuration as it is, and it beats first-fit decreasing at fewer migrations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from tropic.autopilot.base import HostState, Plan, PolicyError, Snapshot, VMState
from tropic.autopilot.policies import POLICIES
from tropic.autopilot.policies.consolidation import ConsolidationConfig, ConsolidationPolicy, consolidate
from tropic.autopilot.policies.consolidation_search import first_fit_decreasing, greedy_drain
from tropic.autopilot.policies.consolidation_state import Fleet, Working
from tropic.autopilot.policies.fleets import generate_fleet

GIB = 1024


def fleet(
    hosts: Mapping[str, Mapping[str, object]],
    vms: Mapping[str, tuple[str, int, int, float | None]],
    *,
    labels: dict[str, dict[str, str]] | None = None,
    stale: frozenset[str] = frozenset(),
) -> Snapshot:
    """``hosts``: name -> HostState overrides (cpus 8, 16 GiB by default); ``vms``: name -> (host, vcpus,
    memory GiB, demand in cores)."""
    hs: dict[str, HostState] = {}
    for name, extra in hosts.items():
        path = f"/compute/r1/{name}"
        opts: dict[str, object] = {"region": "r1", "cpus": 8, "memory_mib": 16 * GIB, **extra}
        hs[path] = HostState(path=path, **opts)  # type: ignore[arg-type]
    vs: dict[str, VMState] = {}
    for name, (host, vcpus, mem, demand) in vms.items():
        path = f"/compute/r1/{host}/{name}"
        vs[path] = VMState(
            path=path,
            host=f"/compute/r1/{host}",
            vcpus=vcpus,
            memory_mib=mem * GIB,
            demand=demand,
            labels=(labels or {}).get(name, {}),
        )
    return Snapshot(at=0.0, hosts=hs, vms=vs, stale=frozenset(f"/compute/r1/{s}" for s in stale))


def dests(plan: Plan) -> dict[str, str]:
    return {m.vm.rsplit("/", 1)[1]: m.dest.rsplit("/", 1)[1] for m in plan.moves}


def test_two_half_empty_hosts_become_one_and_the_other_is_switched_off() -> None:
    snap = fleet({"a": {}, "b": {}}, {"v1": ("a", 2, 4, 1.0), "v2": ("b", 2, 4, 1.0), "v3": ("b", 2, 4, 1.0)})
    plan = ConsolidationPolicy().plan(snap, budget=5, time_limit=10)
    assert dests(plan) == {"v1": "b"}
    assert plan.power_off == ("/compute/r1/a",)
    assert plan.power_on == ()
    assert plan.gain == 1.0 and 0 < plan.cost < plan.gain
    assert "2 -> 1 powered hosts" in plan.why


def test_headroom_binds() -> None:
    # 3.5 + 3.5 cores on 8 CPUs: 87.5%, over the default headroom of 80%, within 90%.
    vms = {"v1": ("a", 4, 2, 3.5), "v2": ("b", 4, 2, 3.5)}
    snap = fleet({"a": {}, "b": {}}, vms)
    assert ConsolidationPolicy().plan(snap, budget=5, time_limit=10).empty
    plan = ConsolidationPolicy(ConsolidationConfig(headroom=0.9)).plan(snap, budget=5, time_limit=10)
    assert len(plan.moves) == 1 and len(plan.power_off) == 1


def test_memory_and_vcpus_bind() -> None:
    by_memory = fleet({"a": {}, "b": {}}, {"v1": ("a", 1, 10, 0.1), "v2": ("b", 1, 10, 0.1)})
    assert ConsolidationPolicy().plan(by_memory, budget=5, time_limit=10).empty
    # 8 CPUs x overcommit 1.0 = 8 vCPUs: two 5-vCPU VMs do not share a host.
    by_vcpus = fleet(
        {"a": {"cpu_overcommit": 1.0}, "b": {"cpu_overcommit": 1.0}},
        {"v1": ("a", 5, 1, 0.1), "v2": ("b", 5, 1, 0.1)},
    )
    assert ConsolidationPolicy().plan(by_vcpus, budget=5, time_limit=10).empty


def test_nothing_lands_on_a_cordoned_host_but_its_vms_may_leave() -> None:
    # Moving v3 onto a would be cheaper, but a is cordoned: both of a's VMs leave instead.
    vms = {"v1": ("a", 1, 2, 0.5), "v2": ("a", 1, 2, 0.5), "v3": ("b", 1, 2, 0.5)}
    snap = fleet({"a": {"cordoned": True}, "b": {}}, vms)
    plan = ConsolidationPolicy().plan(snap, budget=5, time_limit=10)
    assert dests(plan) == {"v1": "b", "v2": "b"}
    assert plan.power_off == ("/compute/r1/a",)
    assert ConsolidationPolicy().plan(snap, budget=1, time_limit=10).empty


def test_stale_vms_and_hosts_are_left_alone() -> None:
    vms = {"v1": ("a", 1, 2, 0.5), "v2": ("b", 1, 2, 0.5), "v3": ("c", 1, 2, 0.5), "v4": ("d", 1, 2, 0.5)}
    snap = fleet({"a": {}, "b": {}, "c": {}, "d": {}}, vms, stale=frozenset({"a/v1", "c"}))
    plan = ConsolidationPolicy().plan(snap, budget=5, time_limit=10)
    # v1 is stale (pinned, and its host's load unknown: nothing lands on a); c is stale (nothing leaves or
    # lands): only b and d consolidate, onto each other.
    assert dests(plan) in ({"v2": "d"}, {"v4": "b"})
    assert len(plan.power_off) == 1 and plan.power_off[0] in ("/compute/r1/b", "/compute/r1/d")
    unknown = fleet({"a": {}, "b": {}}, {"v1": ("a", 1, 2, None), "v2": ("b", 1, 2, 0.5)})
    plan = ConsolidationPolicy().plan(unknown, budget=5, time_limit=10)
    # v1's demand is unknown: it stays, and nothing lands on its host (its load cannot be checked).
    assert plan.empty


def test_a_powered_off_host_is_powered_on_when_it_frees_more() -> None:
    # Three small hosts each with one VM; a big powered-off host takes all three (3 off, 1 on).
    small = {"cpus": 4, "memory_mib": 8 * GIB}
    hosts = {
        "a": small,
        "b": small,
        "c": small,
        "big": {"cpus": 32, "memory_mib": 64 * GIB, "powered": False},
    }
    vms = {"v1": ("a", 2, 6, 2.0), "v2": ("b", 2, 6, 2.0), "v3": ("c", 2, 6, 2.0)}
    plan = ConsolidationPolicy().plan(fleet(hosts, vms), budget=5, time_limit=10)
    assert plan.power_on == ("/compute/r1/big",)
    assert set(plan.power_off) == {"/compute/r1/a", "/compute/r1/b", "/compute/r1/c"}
    assert set(dests(plan).values()) == {"big"}
    assert plan.gain == 3.0 and plan.cost > 1.1  # one host on again, plus its boot cost


def test_anti_affinity_label_keeps_members_in_distinct_failure_domains() -> None:
    hosts = {"a": {"failure_domain": "rack1"}, "b": {"failure_domain": "rack2"}}
    vms = {"v1": ("a", 1, 2, 0.5), "v2": ("b", 1, 2, 0.5)}
    together = fleet(hosts, vms)
    assert len(ConsolidationPolicy().plan(together, budget=5, time_limit=10).moves) == 1
    apart = fleet(hosts, vms, labels={"v1": {"anti_affinity": "db"}, "v2": {"anti_affinity": "db"}})
    assert ConsolidationPolicy().plan(apart, budget=5, time_limit=10).empty


def test_vms_stay_in_their_region() -> None:
    snap = fleet({"a": {"region": "r2"}, "b": {}}, {"v1": ("a", 1, 1, 0.2), "v2": ("b", 1, 1, 0.2)})
    assert ConsolidationPolicy().plan(snap, budget=5, time_limit=10).empty


def test_the_budget_is_a_hard_limit() -> None:
    vms = {"v1": ("a", 1, 1, 0.2), "v2": ("a", 1, 1, 0.2), "v3": ("b", 1, 1, 0.2), "v4": ("c", 1, 1, 0.2)}
    snap = fleet({"a": {}, "b": {}, "c": {}}, vms)
    assert ConsolidationPolicy().plan(snap, budget=0, time_limit=10).empty
    plan = ConsolidationPolicy().plan(snap, budget=1, time_limit=10)
    assert len(plan.moves) == 1 and len(plan.power_off) == 1
    plan = ConsolidationPolicy().plan(snap, budget=2, time_limit=10)
    assert len(plan.moves) == 2 and len(plan.power_off) == 2


def test_idle_powered_hosts_are_switched_off_without_migrations() -> None:
    snap = fleet({"a": {}, "idle": {}}, {"v1": ("a", 1, 1, 0.2)})
    plan = ConsolidationPolicy().plan(snap, budget=0, time_limit=10)
    assert plan.moves == () and plan.power_off == ("/compute/r1/idle",)


@pytest.mark.parametrize("headroom", [0.0, -0.5, 1.5, float("nan")])
def test_an_impossible_headroom_is_a_policy_error(headroom: float) -> None:
    with pytest.raises(PolicyError, match="impossible headroom"):
        POLICIES["consolidation"](headroom=headroom)
    snap = fleet({"a": {}}, {"v1": ("a", 1, 1, 0.2)})
    with pytest.raises(PolicyError, match="impossible headroom"):
        consolidate(snap, budget=1, time_limit=1, config=ConsolidationConfig(headroom=headroom))


def test_a_fleet_whose_demand_cannot_fit_is_a_policy_error() -> None:
    snap = fleet({"a": {}}, {"v1": ("a", 8, 1, 7.0)})  # 7 cores > 0.8 x 8
    with pytest.raises(PolicyError, match=r"predicted demand \(7.0 cores\) cannot fit"):
        ConsolidationPolicy().plan(snap, budget=1, time_limit=1)


def test_bad_options_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="unknown option"):
        POLICIES["consolidation"](head_room=0.8)
    with pytest.raises(PolicyError, match="headroom must be a number"):
        POLICIES["consolidation"](headroom="80%")
    snap = fleet({"a": {}}, {"v1": ("a", 1, 1, 0.2)})
    with pytest.raises(PolicyError, match="budget"):
        ConsolidationPolicy().plan(snap, budget=-1, time_limit=1)
    with pytest.raises(PolicyError, match="time limit"):
        ConsolidationPolicy().plan(snap, budget=1, time_limit=0)


def test_a_timed_out_solve_leaves_the_configuration_as_it_is() -> None:
    snap = fleet({"a": {}, "b": {}}, {"v1": ("a", 2, 4, 1.0), "v2": ("b", 2, 4, 1.0)})
    plan = ConsolidationPolicy().plan(snap, budget=5, time_limit=1e-9)
    assert plan.empty
    assert "timed out" in plan.why and "stays as it is" in plan.why


def test_already_optimal_says_so() -> None:
    snap = fleet({"a": {}}, {"v1": ("a", 2, 4, 1.0)})
    plan = ConsolidationPolicy().plan(snap, budget=5, time_limit=10)
    assert plan.empty and "already the best" in plan.why


def test_it_beats_first_fit_decreasing_with_fewer_migrations_on_a_generated_fleet() -> None:
    snap = generate_fleet(60, 600, seed=3, anti_affinity_groups=10)
    config = ConsolidationConfig(full_model_max_pairs=0)  # the large-fleet search, as at 10K VMs
    ffd = Working(Fleet(snap, config))
    first_fit_decreasing(ffd)
    ffd_hosts = int(np.count_nonzero(ffd.on()))
    result = consolidate(snap, budget=ffd.moved, time_limit=3, config=config)
    assert result.working.violations(ffd.moved) == []
    assert result.hosts_after <= ffd_hosts
    assert result.migrations < ffd.moved
    greedy = Working(Fleet(snap, config))
    greedy_drain(greedy, 40)
    at_budget = consolidate(snap, budget=40, time_limit=3, config=config)
    assert at_budget.hosts_after <= int(np.count_nonzero(greedy.on()))
    assert at_budget.migrations <= 40
