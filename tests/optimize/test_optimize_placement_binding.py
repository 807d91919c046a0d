"""Every placement constraint kind changes the optimum on an instance where it binds, and the CP-SAT model
(with its VM classes and host symmetry breaking) is exact against exhaustive enumeration."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tropic.optimize import (
    VM,
    AntiAffinity,
    Host,
    Infeasible,
    Level,
    PlacementObjective,
    PlacementProblem,
    RegionLimit,
    SolverSettings,
    SolveStatus,
    Spread,
    check_placement,
    host_lower_bound,
    placement_cost,
    solve_placement,
)

S = SolverSettings(time_limit_s=10)
GIB = 1024


def solve(problem: PlacementProblem) -> tuple[int, int, dict[str, str]]:
    placement = solve_placement(problem, S, strategy="full")
    assert placement.status is SolveStatus.OPTIMAL
    assert check_placement(problem, placement.assignment) == []
    return placement.hosts_used, placement.objective, dict(placement.assignment)


def hosts(
    n: int, vcpus: int = 16, memory_gib: int = 64, region: str = "r1", rack_size: int = 100
) -> list[Host]:
    return [
        Host(f"/compute/{region}/h{i}", vcpus, memory_gib * GIB, region, f"{region}/rack{i // rack_size}")
        for i in range(n)
    ]


def vms(n: int, vcpus: int = 2, memory_gib: int = 4, prefix: str = "vm") -> list[VM]:
    return [VM(f"{prefix}{i}", vcpus, memory_gib * GIB, image="/storage/r1/san-1/img") for i in range(n)]


def test_cpu_capacity_binds() -> None:
    loose = PlacementProblem(tuple(hosts(3, vcpus=32)), tuple(vms(3, vcpus=8)))
    tight = replace(loose, hosts=tuple(hosts(3, vcpus=16)))
    assert solve(loose)[0] == 1
    assert solve(tight)[0] == 2


def test_memory_capacity_binds() -> None:
    loose = PlacementProblem(tuple(hosts(3, memory_gib=64)), tuple(vms(3, memory_gib=20)))
    tight = replace(loose, hosts=tuple(hosts(3, memory_gib=32)))
    assert solve(loose)[0] == 1
    assert solve(tight)[0] == 3


def test_anti_affinity_binds() -> None:
    group = vms(4)
    names = tuple(v.name for v in group)
    loose = PlacementProblem(tuple(hosts(4)), tuple(group))
    assert solve(loose)[0] == 1
    assert solve(replace(loose, constraints=(AntiAffinity(names, 2),)))[0] == 2
    used, _, assignment = solve(replace(loose, constraints=(AntiAffinity(names, 1),)))
    assert used == 4 and len(set(assignment.values())) == 4


def test_failure_domain_spread_binds() -> None:
    group = vms(4)
    names = tuple(v.name for v in group)
    loose = PlacementProblem(tuple(hosts(4, rack_size=2)), tuple(group))
    _, _, assignment = solve(replace(loose, constraints=(Spread(names, Level.FAILURE_DOMAIN, 2),)))
    racks = [loose.host(h).failure_domain for h in assignment.values()]
    assert sorted(racks.count(r) for r in set(racks)) == [2, 2]
    assert solve(loose)[0] == 1


def test_region_spread_binds() -> None:
    group = vms(3)
    names = tuple(v.name for v in group)
    loose = PlacementProblem(tuple(hosts(2, region="r1") + hosts(2, region="r2")), tuple(group))
    used, _, assignment = solve(replace(loose, constraints=(Spread(names, Level.REGION, 2),)))
    assert {loose.host(h).region for h in assignment.values()} == {"r1", "r2"}
    assert used == 2 and solve(loose)[0] == 1


def test_region_vm_limit_binds() -> None:
    # Big hosts in r1, small ones in r2: capping r1 pushes VMs onto more, smaller hosts.
    fleet = tuple(hosts(2, vcpus=16, region="r1") + hosts(3, vcpus=8, region="r2"))
    loose = PlacementProblem(fleet, tuple(vms(4, vcpus=8)))
    assert solve(loose)[0] == 2
    used, _, assignment = solve(replace(loose, constraints=(RegionLimit("r1", max_vms=2),)))
    assert used == 3
    assert sum(1 for h in assignment.values() if h.startswith("/compute/r1/")) == 2


def test_region_host_limit_binds() -> None:
    fleet = tuple(hosts(2, vcpus=16, region="r1") + hosts(3, vcpus=8, region="r2"))
    loose = PlacementProblem(fleet, tuple(vms(4, vcpus=8)))
    used, _, assignment = solve(replace(loose, constraints=(RegionLimit("r1", max_hosts=1),)))
    assert used == 3
    assert len({h for h in assignment.values() if h.startswith("/compute/r1/")}) == 1


def test_migration_cost_decides_consolidation() -> None:
    fleet = hosts(2)
    running = [replace(v, host=fleet[i].path) for i, v in enumerate(vms(2))]
    cheap = PlacementProblem(tuple(fleet), tuple(running), objective=PlacementObjective(10, 1))
    used, objective, _ = solve(cheap)
    assert (used, objective) == (1, 11)  # one host plus one migration
    dear = replace(cheap, objective=PlacementObjective(10, 20))
    used, objective, assignment = solve(dear)
    assert (used, objective) == (2, 20) and assignment == {v.name: v.host for v in running}


def test_infeasible_constraints_are_reported() -> None:
    group = vms(3)
    problem = PlacementProblem(
        tuple(hosts(2)), tuple(group), (AntiAffinity(tuple(v.name for v in group), 1),)
    )
    with pytest.raises(Infeasible):
        solve_placement(problem, S, strategy="full")


def test_problem_validation_names_the_resource() -> None:
    from tropic.errors import InvalidArguments

    with pytest.raises(InvalidArguments, match="unknown VM 'ghost'"):
        PlacementProblem(tuple(hosts(1)), tuple(vms(1)), (AntiAffinity(("ghost",), 1),))
    with pytest.raises(InvalidArguments, match="current host /nowhere"):
        PlacementProblem(tuple(hosts(1)), (VM("a", 1, 1, host="/nowhere"),))


# --- exactness against enumeration --------------------------------------------------------------------------
@st.composite
def small_problems(draw: st.DrawFn) -> PlacementProblem:
    n_hosts = draw(st.integers(1, 4))
    fleet = [
        Host(
            f"/compute/{r}/h{i}",
            draw(st.sampled_from([4, 8])),
            draw(st.sampled_from([8, 16])) * GIB,
            r,
            f"{r}/rack{draw(st.integers(0, 1))}",
        )
        for i in range(n_hosts)
        for r in [draw(st.sampled_from(["r1", "r2"]))]
    ]
    n_vms = draw(st.integers(1, 5))
    group: list[VM] = []
    for i in range(n_vms):
        current = draw(st.one_of(st.none(), st.sampled_from([h.path for h in fleet])))
        group.append(
            VM(f"v{i}", draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([2, 4, 8])) * GIB, current)
        )
    names = [v.name for v in group]
    constraints: list[AntiAffinity | Spread | RegionLimit] = []
    if n_vms > 1 and draw(st.booleans()):
        constraints.append(AntiAffinity(tuple(draw(st.permutations(names))[:2]), 1))
    if n_vms > 1 and draw(st.booleans()):
        members = tuple(draw(st.permutations(names))[: draw(st.integers(2, n_vms))])
        constraints.append(Spread(members, draw(st.sampled_from(list(Level))), draw(st.integers(1, 2))))
    if draw(st.booleans()):
        constraints.append(
            RegionLimit(
                "r1",
                draw(st.one_of(st.none(), st.integers(0, 3))),
                draw(st.one_of(st.none(), st.integers(0, 2))),
            )
        )
    return PlacementProblem(
        tuple(fleet),
        tuple(group),
        tuple(constraints),
        PlacementObjective(draw(st.integers(0, 10)), draw(st.integers(0, 10))),
    )


def brute_force(problem: PlacementProblem) -> int | None:
    names = [v.name for v in problem.vms]
    best: int | None = None
    for combo in itertools.product([h.path for h in problem.hosts], repeat=len(names)):
        assignment = dict(zip(names, combo, strict=True))
        if not check_placement(problem, assignment):
            objective = placement_cost(problem, assignment)[2]
            best = objective if best is None else min(best, objective)
    return best


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_cpsat_placement_equals_enumeration(problem: PlacementProblem) -> None:
    expected = brute_force(problem)
    if expected is None:
        with pytest.raises(Infeasible):
            solve_placement(problem, S, strategy="full")
        return
    placement = solve_placement(problem, S, strategy="full")
    assert placement.status is SolveStatus.OPTIMAL
    assert check_placement(problem, placement.assignment) == []
    assert placement.objective == expected
    assert host_lower_bound(problem) <= placement.hosts_used
