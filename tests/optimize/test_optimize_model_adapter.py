"""The optimizer on the real platform: read the logical model, solve, plan, and execute the plan as ordinary
transactions; afterwards the model (and the devices) match the solver's target exactly."""

from __future__ import annotations

import pytest

from core.helpers import assert_invariants, spawn
from tropic.errors import InvalidArguments
from tropic.model import Model
from tropic.optimize import (
    VM,
    AntiAffinity,
    PlacementObjective,
    SolverSettings,
    check_placement,
    diff_placements,
    execute_plan,
    solve_placement,
)
from tropic.optimize.model_adapter import (
    ControllerRunner,
    controller_placement,
    controller_problem,
    model_problem,
    read_fleet,
)
from tropic.scenario import image_path
from tropic.txn import Controller, State


def run(c: Controller, procedure: str, args: dict[str, object]) -> None:
    t = c.wait(c.submit(procedure, args), 30)
    assert t.state is State.COMMITTED, t.error


def test_fleet_mirrors_the_model_capacity_constraints(model: Model) -> None:
    hosts, vms = read_fleet(model)
    assert vms == ()
    assert [h.path for h in hosts] == [f"/compute/{r}/host-0{i}" for r in ("r1", "r2") for i in (1, 2, 3)]
    first = hosts[0]
    # 16 CPUs x 4.0 overcommit, 16 GiB, region from the path, failure domain from the attribute.
    assert (first.vcpus, first.memory_mib, first.region, first.failure_domain) == (
        64,
        16384,
        "r1",
        "r1-rack-1",
    )


def test_new_vms_must_not_claim_a_host(model: Model) -> None:
    with pytest.raises(InvalidArguments, match="must not have a current host"):
        model_problem(model, new_vms=[VM("x", 1, 512, host="/compute/r1/host-01")])


def test_executing_the_plan_leaves_the_model_at_the_solver_target(ctl: Controller) -> None:
    # One VM per host: a wasteful but valid start for consolidation.
    for region in ("r1", "r2"):
        for i in (1, 2, 3):
            run(ctl, "spawn_vm", spawn(region, i, f"{region}-vm{i}", memory_mib=4096, vcpus=2))
    new = [VM(f"new{i}", 2, 4096, image=image_path("r1")) for i in range(3)]
    problem = controller_problem(
        ctl,
        new_vms=new,
        constraints=(AntiAffinity(("r1-vm1", "r2-vm1"), 1),),
        objective=PlacementObjective(host_cost=10, migration_cost=1),
    )
    placement = solve_placement(problem, SolverSettings(time_limit_s=5))
    assert placement.hosts_used < 6 and placement.migrations > 0
    target = dict(placement.assignment)
    del target["r2-vm3"]  # the caller also retires one VM: the plan must destroy it
    steps = diff_placements(
        problem.current, target, {v.name: v for v in problem.vms}, {h.path: h for h in problem.hosts}
    )
    assert {s.procedure for s in steps} == {"spawn_vm", "migrate_vm", "destroy_vm"}

    report = execute_plan(steps, ControllerRunner(ctl))
    assert report.ok, report.to_dict()
    assert all(o.txn_id for o in report.outcomes)
    assert controller_placement(ctl) == target
    assert check_placement(problem, {**target, "r2-vm3": placement.assignment["r2-vm3"]}) == []
    assert_invariants(ctl)  # logical == physical, no orphans, no violated constraint


def test_a_step_the_transaction_layer_refuses_stops_the_plan(ctl: Controller) -> None:
    big = 12 * 1024
    run(ctl, "spawn_vm", spawn("r1", 1, "a", memory_mib=big))
    run(ctl, "spawn_vm", spawn("r1", 2, "b", memory_mib=big))
    problem = controller_problem(ctl)
    # Without host data the diff cannot order around capacity: moving b onto a's full host must be
    # refused by the constraint check, before any device is touched.
    steps = diff_placements(
        problem.current,
        {"a": "/compute/r1/host-01", "b": "/compute/r1/host-01"},
        {v.name: v for v in problem.vms},
    )
    report = execute_plan(steps, ControllerRunner(ctl))
    assert not report.ok
    outcome = report.outcomes[-1]
    assert outcome.state == "ABORTED" and outcome.error is not None and "memory" in outcome.error
    assert controller_placement(ctl) == problem.current
    assert_invariants(ctl)
