"""The follow-the-sun policy: a demand shift triggers a migration plan ahead of the shift; flapping
demand does not make the service flap; a move the actuation refuses (or that no host can take) never
happens; members that cannot fit are refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tropic.autopilot.base import HostState, ServiceState, Snapshot, VMState
from tropic.autopilot.policies.sun import SunPolicy
from tropic.errors import ConfigError
from tropic.sun.contract import Placement
from tropic.sun.planner import SunConfig, SunPlanner, moves_between
from tropic.sun.strategies import compare, dynamic, reduction_vs_best_static

from .helpers import MATRIX, demand

CONFIG = SunConfig(members=3, capacity=3, horizon_h=2, decide_every_min=60, hysteresis=0.05, time_limit=5)
ALL_A = Placement(("A", "A", "A"), leader=0)
SHIFT = [{"A": 100.0, "C": 0.0}] * 4 + [{"A": 0.0, "C": 100.0}] * 8  # the users move from A to C at 04:00


def test_a_demand_shift_triggers_a_migration_planned_ahead() -> None:
    planner = SunPlanner(MATRIX, demand(SHIFT), CONFIG)
    target, lead = planner.decide(1, ALL_A)
    assert target == ALL_A, planner.last_why  # the forecast from 02:00 shows no shift yet
    target, lead = planner.decide(3, ALL_A)  # at 03:00 the forecast sees C's users from 04:00
    assert moves_between(ALL_A, target), planner.last_why
    assert target.members[target.leader] == "C"
    assert 3 + lead <= 4  # the migration ends by the start of the shift


def test_the_dynamic_day_follows_the_shift_and_beats_the_static_ones() -> None:
    d = demand(SHIFT)
    single, glob, _ = compare(MATRIX, d, CONFIG)
    dyn = dynamic(MATRIX, d, CONFIG, initial=ALL_A)
    assert 0 < dyn.migrations <= CONFIG.budget_per_day
    at4 = dyn.placements[4]
    assert at4.members[at4.leader] == "C" and at4.members.count("C") >= 2  # in place when the users arrive
    assert dyn.downtime_s > 0 and dyn.cost > 0
    assert reduction_vs_best_static([single, glob, dyn]) > 0.3


def _counts(p: Placement) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in p.members:
        out[m] = out.get(m, 0) + 1
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["A", "C"]), st.floats(1.0, 1000.0)), min_size=24, max_size=24))
def test_flapping_demand_causes_no_flapping(seq: list[tuple[str, float]]) -> None:
    rates = [{"A": 1.0, "C": 1.0, where: 1.0 + level} for where, level in seq]
    cfg = SunConfig(
        members=3, capacity=3, horizon_h=1, hysteresis=0.05, budget_per_day=3, dwell_h=6, time_limit=5
    )
    applied: list[tuple[int, Placement, Placement]] = []

    def actuate(step: int, current: Placement, target: Placement) -> Placement:
        applied.append((step, current, target))
        return target

    day = dynamic(MATRIX, demand(rates), cfg, initial=ALL_A, actuate=actuate)
    assert day.migrations <= cfg.budget_per_day  # the day is 24 h: one budget
    dwell = 6
    events: list[tuple[int, str, str]] = []  # (step, source, dest) per member move
    for step, cur, tgt in applied:
        events += [(step, s, d) for s, d in moves_between(cur, tgt)]
    assert len(events) == day.migrations
    for i, (k, src, dst) in enumerate(events):
        for k2, src2, dst2 in events[i + 1 :]:
            if k2 - k < dwell:
                assert dst2 != src, f"a member went back into {src} {k2 - k} h after leaving it"
                assert src2 != dst, f"a member left {dst} {k2 - k} h after arriving"


def test_a_refused_move_leaves_the_service_where_it_was() -> None:
    def refuse(step: int, current: Placement, target: Placement) -> Placement:
        return current

    day = dynamic(MATRIX, demand(SHIFT), CONFIG, initial=ALL_A, actuate=refuse)
    assert all(p == ALL_A for p in day.placements)
    assert day.migrations == 0 and day.extra["refused"] >= 1


def test_members_that_cannot_fit_are_refused() -> None:
    with pytest.raises(ConfigError, match="7 members do not fit: 3 regions x capacity 2 = 6 places"):
        compare(MATRIX, demand(SHIFT), SunConfig(members=7, capacity=2))


def _snapshot(at: float, c_memory: int = 65536) -> Snapshot:
    hosts = {
        "/hosts/a1": HostState("/hosts/a1", "A", 16, 65536, vms=("/r/a1/z0", "/r/a1/z1", "/r/a1/z2")),
        "/hosts/b1": HostState("/hosts/b1", "B", 16, 65536),
        "/hosts/c1": HostState("/hosts/c1", "C", 16, c_memory),
    }
    vms = {f"/r/a1/z{i}": VMState(f"/r/a1/z{i}", "/hosts/a1", 2, 4096) for i in range(3)}
    svc = ServiceState("/services/zk", "zookeeper", "zk", 2, 4096, members=tuple(vms))
    return Snapshot(at=at, hosts=hosts, vms=vms, services={svc.path: svc})


def test_the_autopilot_plug_in_moves_members_to_hosts_of_the_target_region() -> None:
    policy = SunPolicy("zk", SunPlanner(MATRIX, demand(SHIFT), CONFIG))
    plan = policy.plan(_snapshot(at=3 * 3600.0), budget=10, time_limit=5)
    assert plan.moves, plan.why
    assert all(m.dest == "/hosts/c1" for m in plan.moves)
    assert policy.leader == "C"


def test_the_plug_in_plans_nothing_when_no_host_of_the_target_has_room() -> None:
    policy = SunPolicy("zk", SunPlanner(MATRIX, demand(SHIFT), CONFIG))
    plan = policy.plan(_snapshot(at=3 * 3600.0, c_memory=1024), budget=10, time_limit=5)
    assert plan.empty and "no host in C has room" in plan.why
    assert policy.leader == ""  # nothing changed


def test_the_plug_in_is_registered_and_checks_its_options() -> None:
    import tropic.cli.sun  # noqa: F401  (the CLI registers the plug-in)
    from tropic.autopilot.base import PolicyError
    from tropic.autopilot.policies import make_policy
    from tropic.sun.demand import business_sample_path
    from tropic.sun.run import latency_sample_path

    lat, dem = str(latency_sample_path()), str(business_sample_path())
    policy = make_policy("sun:zk", latency=lat, demand=dem, members=3)
    assert isinstance(policy, SunPolicy) and policy.service == "/services/zk"
    with pytest.raises(PolicyError, match="unknown option 'colour'"):
        make_policy("sun:zk", latency=lat, demand=dem, colour=1)
    with pytest.raises(PolicyError, match="needs the managed service"):
        make_policy("sun", latency=lat, demand=dem)


def test_the_hourly_oracle_bounds_every_strategy() -> None:
    from tropic.sun.strategies import oracle_hourly

    d = demand(SHIFT)
    single, glob, dyn = compare(MATRIX, d, CONFIG)
    bound = oracle_hourly(MATRIX, d, CONFIG)
    assert bound.mean_ms <= min(single.mean_ms, glob.mean_ms, dyn.mean_ms) + 1e-9
