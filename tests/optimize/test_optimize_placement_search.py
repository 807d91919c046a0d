"""Heuristics, the large-neighbourhood search and its sub-models keep every constraint of the problem."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tropic.optimize import (
    VM,
    Level,
    PlacementObjective,
    PlacementProblem,
    RegionLimit,
    SolverSettings,
    Spread,
    best_ffd,
    check_placement,
    filter_and_weigh,
    first_fit_decreasing,
    generated_batch,
    host_lower_bound,
    make_hosts,
    placement_cost,
    solve_placement,
)
from tropic.optimize.base import SolveStatus, make_solver, status_of
from tropic.optimize.heuristics import SPREAD
from tropic.optimize.placement_cpsat import compile_placement
from tropic.optimize.placement_state import PlacementState


def batch_problem(
    n_vms: int, n_hosts: int, seed: int, *, regions: tuple[str, ...] = ("r1",)
) -> PlacementProblem:
    batch = generated_batch(n_vms, seed)
    hosts = make_hosts(n_hosts, regions=regions, hosts_per_rack=4)
    return batch.problem(hosts, max_per_host=2)


def test_heuristics_respect_every_constraint() -> None:
    problem = batch_problem(300, 60, 1)
    assert problem.constraints, "the generated batch must carry tenant constraints"
    for result in (
        first_fit_decreasing(problem, key="max"),
        first_fit_decreasing(problem, key="sum"),
        filter_and_weigh(problem),
        filter_and_weigh(problem, SPREAD),
    ):
        assert result.complete, result.method
        assert check_placement(problem, result.assignment) == [], result.method
        assert result.hosts_used == placement_cost(problem, result.assignment)[0]


def test_nova_spread_weighers_spread_and_pack_weighers_pack() -> None:
    problem = batch_problem(60, 40, 2)
    assert filter_and_weigh(problem, SPREAD).hosts_used > filter_and_weigh(problem).hosts_used


def test_heuristics_report_what_they_cannot_place() -> None:
    problem = batch_problem(100, 3, 3)
    result = best_ffd(problem)
    assert not result.complete
    violations = check_placement(problem, result.assignment)
    # Nothing placed breaks a constraint; the only complaints are the VMs left out.
    assert violations == [f"VM {v.name} is not placed" for v in problem.vms if v.name in result.unplaced]


def test_lns_improves_on_ffd_within_constraints() -> None:
    problem = batch_problem(400, 80, 4, regions=("r1", "r2"))
    problem = PlacementProblem(
        problem.hosts, problem.vms, (*problem.constraints, RegionLimit("r1", max_hosts=20)), problem.objective
    )
    ffd = best_ffd(problem)
    placement = solve_placement(problem, SolverSettings(time_limit_s=3), strategy="lns")
    assert check_placement(problem, placement.assignment) == []
    assert placement.lower_bound <= placement.hosts_used <= ffd.hosts_used
    assert placement.method.startswith("lns")


def test_lns_consolidates_running_vms_at_a_migration_cost() -> None:
    base = batch_problem(120, 60, 5)
    rng = random.Random(5)
    # Nova's default (spreading) weighers leave the VMs thinly spread: a valid but wasteful start.
    spread = filter_and_weigh(base, SPREAD).assignment
    running = tuple(VM(v.name, v.vcpus, v.memory_mib, spread[v.name], v.image) for v in base.vms)
    problem = PlacementProblem(base.hosts, running, base.constraints, PlacementObjective(10, 1))
    assert check_placement(problem, problem.current) == []
    before = placement_cost(problem, problem.current)
    placement = solve_placement(
        problem, SolverSettings(time_limit_s=3, seed=rng.randint(0, 9)), strategy="lns"
    )
    assert check_placement(problem, placement.assignment) == []
    assert placement.objective < before[2]
    assert placement.migrations > 0 and placement.hosts_used < before[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(2, 8), st.integers(1, 3))
def test_sub_model_keeps_the_fixed_part_feasible(seed: int, n_free_hosts: int, fd_cap: int) -> None:
    """Free the VMs of a few hosts, re-solve them against residual capacities and counts: the whole
    placement must stay valid (this is what every LNS step relies on)."""
    rng = random.Random(seed)
    base = batch_problem(80, 24, seed % 7, regions=("r1", "r2"))
    extra = []
    names = [v.name for v in base.vms]
    for _ in range(3):
        members = tuple(rng.sample(names, rng.randint(3, 10)))
        extra.append(Spread(members, rng.choice([Level.FAILURE_DOMAIN, Level.REGION]), fd_cap + 2))
    problem = PlacementProblem(
        base.hosts,
        base.vms,
        (*base.constraints, *extra, RegionLimit("r2", max_vms=45, max_hosts=10)),
        base.objective,
    )
    start = best_ffd(problem)
    if not start.complete:
        return
    state = PlacementState(problem, start.assignment)
    used = sorted({state.assign[v] for v in range(len(problem.vms))})
    free_hosts = rng.sample(used, min(n_free_hosts, len(used)))
    if rng.random() < 0.5:
        empty = [h for h in range(len(problem.hosts)) if state.vm_count[h] == 0]
        free_hosts += rng.sample(empty, min(2, len(empty)))
    free_vms = sorted(v for h in free_hosts for v in state.on_host[h])
    previous = {v: state.assign[v] for v in free_vms}
    state.remove_all(free_vms)
    compiled = compile_placement(state, free_vms, free_hosts, hint=previous, target=free_hosts[0])
    solver = make_solver(SolverSettings(time_limit_s=5))
    status = status_of(solver.solve(compiled.model))
    assert status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)  # the previous placement is a solution
    for v, h in compiled.decode(solver, previous).items():
        assert h in free_hosts
        state.place(v, h)
    assert state.consistent()
    assert check_placement(problem, state.assignment()) == []
    # The sub-model never does worse than the placement it started from (its hint).
    assert int(solver.value(compiled.objective)) <= problem.objective.host_cost * len(set(previous.values()))


def test_lower_bound_counts_each_resource_and_anti_affinity() -> None:
    problem = batch_problem(200, 100, 6)
    bound = host_lower_bound(problem)
    cpu = sum(v.vcpus for v in problem.vms)
    assert bound >= -(-cpu // problem.hosts[0].vcpus)
    assert bound <= solve_placement(problem, SolverSettings(time_limit_s=3)).hosts_used
