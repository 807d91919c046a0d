"""Acceptance: the PsEPR service is kept at its optimum as candidates' load changes, through spawns and
destroys, on a running embedded server (SQLite store, sim driver playing a load the test sets, the
autopilot's sensors, knowledge base and predictor in the loop). Each change is a
``spawn_service_member``/``destroy_service_member`` transaction, visible in the decision log and in the
transaction history; the cool-down, the hysteresis and the pass budget hold changes back."""

from __future__ import annotations

from pathlib import Path

from autopilot.served import Served, served
from core.helpers import assert_invariants
from tropic.autopilot.decisions import ACTED, IDLE, Decision
from tropic.autopilot.policies.psepr import PseprConfig, overlay_problem
from tropic.model import VM, Service
from tropic.optimize.overlay import evaluate
from tropic.optimize.overlay_bruteforce import solve_overlay_bruteforce

US = [f"/compute/us-east/host-0{i}" for i in (1, 2, 3)]
EU = [f"/compute/eu-west/host-0{i}" for i in (1, 2, 3)]
SVC = "/services/overlay"
MEMBER_STEPS = ("spawn_service_member", "destroy_service_member")


def worker(host: str) -> str:
    return f"w-{host.split('/')[2]}-{host[-1]}"


def setup(s: Served) -> None:
    for h in US + EU:
        region = h.split("/")[2]
        image = f"/storage/{region}/san-1/img-ubuntu"
        s.run("spawn_vm", {"name": worker(h), "host": h, "image": image, "vcpus": 8, "memory_mib": 1024})
    s.run(
        "create_service",
        {
            "name": "overlay",
            "image": "/storage/us-east/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 512,
            "candidates": ",".join(US + EU),
            "min_members": 2,
            "max_members": 2,
        },
    )


def set_load(s: Served, by_host: dict[str, float]) -> None:
    for host, fraction in by_host.items():
        s.load.cpu_of[worker(host)] = fraction


def member_hosts(s: Served) -> set[str]:
    def read() -> set[str]:
        view = s.ctl.model.reader()
        return {view.resolve(uid, VM).path.rsplit("/", 1)[0] for uid in view.get(SVC, Service).members}

    return s.ctl.call(read)


def optimum(s: Served) -> set[str]:
    """The hosts of the exhaustive optimum of the overlay on what the autopilot sees now."""
    snap = s.autopilot.source(s.clock.now)
    problem = overlay_problem(snap, snap.services[SVC], PseprConfig())
    truth = solve_overlay_bruteforce(problem)
    assert truth.evaluation is not None
    assert evaluate(problem, sorted(truth.evaluation.chosen)).objective == truth.evaluation.objective
    return set(truth.evaluation.chosen)


def one_pass(s: Served, advance: float) -> Decision:
    s.clock.advance(advance)
    [d] = s.autopilot.run_once()
    return d


def at_optimum(s: Served) -> None:
    """The members are the exhaustive optimum, and the next pass says so and changes nothing."""
    assert member_hosts(s) == optimum(s)
    d = one_pass(s, 1)
    assert d.status == IDLE and "at its optimum" in d.why and not d.steps


def member_txns(s: Served) -> list[tuple[str, str]]:
    return [(t.procedure, t.state.value) for t in s.ctl.transactions() if t.procedure in MEMBER_STEPS]


def test_the_psepr_service_is_kept_at_its_optimum_through_spawns_and_destroys(tmp_path: Path) -> None:
    with served(
        tmp_path, policies="psepr:overlay", interval=3600, sense_interval=3600, cooldown_s=600, hysteresis=2.0
    ) as s:
        setup(s)
        # 1. No member yet: the optimum is the least loaded host of each region; two spawns.
        set_load(s, {US[0]: 0.05, US[1]: 0.4, US[2]: 0.5, EU[0]: 0.5, EU[1]: 0.05, EU[2]: 0.4})
        d = one_pass(s, 0)
        assert d.status == ACTED and [st.procedure for st in d.steps] == ["spawn_service_member"] * 2
        assert all(st.committed and st.txn is not None for st in d.steps), d.steps
        assert member_hosts(s) == {US[0], EU[1]}
        at_optimum(s)

        # 2. The member's host in us-east gets loaded, another gets light: the optimum moves. Within the
        # cool-down the change is held, and says so; after it, a destroy then a spawn (never above max).
        set_load(s, {US[0]: 0.55, US[2]: 0.02})
        held = one_pass(s, 60)
        assert held.status == IDLE and "cooling down" in held.why and held.held and held.gain > 0
        assert member_hosts(s) == {US[0], EU[1]}
        d = one_pass(s, 600)
        assert d.status == ACTED, d.why
        assert [(st.procedure, st.state) for st in d.steps] == [
            ("destroy_service_member", "COMMITTED"),
            ("spawn_service_member", "COMMITTED"),
        ]
        assert d.steps[1].args["host"] == US[2] and d.steps[0].args["vm"].startswith(US[0] + "/")
        at_optimum(s)

        # 3. A change whose gain does not pay for its cost x hysteresis is held, although the optimum moved.
        set_load(s, {US[1]: 0.0, US[2]: 0.1})
        assert optimum(s) != member_hosts(s)  # the optimum moved...
        d = one_pass(s, 700)
        assert d.status == IDLE and "below hysteresis" in d.why and 0 < d.gain <= d.cost * 2.0
        assert member_hosts(s) == {US[2], EU[1]}  # ...but not by enough: the service stays

        # 4. The load moves further: now it pays, and the service follows.
        set_load(s, {US[2]: 0.5, EU[1]: 0.45, EU[2]: 0.0})
        d = one_pass(s, 700)
        assert d.status == ACTED and all(st.committed for st in d.steps), d.steps
        assert len(d.steps) == 4 and {st.procedure for st in d.steps} == set(MEMBER_STEPS)
        at_optimum(s)

        # 5. The pass budget counts member changes: an optimum needing more changes than it allows waits.
        s.autopilot.guards = type(s.autopilot.guards)(budget_per_pass=1, cooldown_s=600, hysteresis=2.0)
        set_load(s, {US[1]: 0.6, US[0]: 0.0, EU[2]: 0.6, EU[0]: 0.0})
        d = one_pass(s, 700)
        assert d.status == IDLE and "over the budget of 1" in d.why
        s.autopilot.guards = type(s.autopilot.guards)(budget_per_pass=5, cooldown_s=600, hysteresis=2.0)
        d = one_pass(s, 700)
        assert d.status == ACTED and all(st.committed for st in d.steps)
        at_optimum(s)

        # Every change is in the decision log and the transaction history, and all committed.
        logged = [st for dd in s.autopilot.decisions.recent() for st in dd.steps]
        assert len(logged) == 2 + 2 + 4 + 4
        txns = member_txns(s)
        assert len(txns) == len(logged) and all(state == "COMMITTED" for _, state in txns)
        assert {st.txn for st in logged} == {
            t.id for t in s.ctl.transactions() if t.procedure in MEMBER_STEPS
        }
        assert_invariants(s.ctl)


def test_the_actuator_orders_member_changes_under_max_and_holds_them_whole() -> None:
    from tropic.autopilot.actuator import Guards, Migrations, screen, service_identity
    from tropic.autopilot.base import HostState, Plan, ServiceState, Snapshot, SpawnRequest, VMState

    hosts = {h: HostState(path=h, region=h.split("/")[2], cpus=16, memory_mib=32768) for h in US}
    vms = {f"{h}/m": VMState(path=f"{h}/m", host=h, vcpus=1, memory_mib=512, demand=0.0) for h in US[:2]}
    svc = ServiceState(SVC, "psepr", "img", 1, 512, max_members=3, members=tuple(vms))
    snap = Snapshot(0.0, hosts, vms, services={SVC: svc})
    spawns = tuple(SpawnRequest(f"n{i}", US[2], "img", 1, 512) for i in range(2))
    plan = Plan("psepr", spawns=spawns, destroys=tuple(vms), gain=1.0, cost=0.1, service=SVC)
    out = screen(plan, snap, Guards(), Migrations(), 0.0)
    # one free place: a spawn, then a destroy before the next spawn, then the last destroy
    assert [p for p, _ in out.steps] == [
        "spawn_service_member",
        "destroy_service_member",
        "spawn_service_member",
        "destroy_service_member",
    ]
    assert out.steps[0][1] == {"service": SVC, "name": "n0", "host": US[2]}
    held = screen(plan, snap, Guards(budget_per_pass=3), Migrations(), 0.0)
    assert not held.steps and "4 member changes exceed the pass budget (3)" in held.why
    history = Migrations()
    history.record(service_identity(SVC), 0.0)
    cooling = screen(plan, snap, Guards(cooldown_s=60), history, 30.0)
    assert not cooling.steps and "cooling down" in cooling.why
    assert screen(plan, snap, Guards(cooldown_s=60), history, 61.0).steps
