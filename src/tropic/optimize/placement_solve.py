"""Solve a placement problem, and compare the answer with the baselines on the same input.

Strategy: the VMs already running stay put and the new ones are placed by the better first-fit-decreasing
order, which gives a complete starting point and its objective. Then either the whole problem goes to one
CP-SAT model seeded with that start (``"full"``, small problems: it can prove optimality), or the
large-neighbourhood search improves it (``"lns"``, large problems). ``"auto"`` picks by model size.
Every answer is checked against the reference semantics before it is returned.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from tropic.errors import InvalidArguments
from tropic.optimize.base import (
    ProgressCallback,
    ProgressFn,
    SolverSettings,
    SolveStatus,
    make_solver,
    status_of,
)
from tropic.optimize.bounds import host_lower_bound
from tropic.optimize.diagnose import counting_reasons, explain
from tropic.optimize.errors import Infeasible, NoSolutionFound, OptimizeError
from tropic.optimize.heuristics import HeuristicResult, best_ffd, filter_and_weigh
from tropic.optimize.lns import improve
from tropic.optimize.placement import Placement, PlacementProblem, check_placement, placement_cost
from tropic.optimize.placement_cpsat import OBJECTIVE_SCALE, compile_placement
from tropic.optimize.placement_state import PlacementState

# One model for the whole problem only when it is small: beyond that, CP-SAT spends its time on the
# symmetry of interchangeable hosts (1,000 Azure VMs on 150 hosts: 89 hosts after 10 s, where the
# neighbourhood search reaches the lower bound of 85 in under 2 s).
FULL_MODEL_MAX_PAIRS = 2_500  # VMs x hosts
STRATEGIES = ("auto", "full", "lns")


def _full(
    problem: PlacementProblem,
    start_assignment: Mapping[str, str] | None,
    settings: SolverSettings,
    time_limit_s: float,
    progress: ProgressFn | None,
) -> tuple[dict[str, str], SolveStatus] | None:
    state = PlacementState(problem)
    vms = list(range(len(problem.vms)))
    hosts = list(range(len(problem.hosts)))
    hint = None
    if start_assignment is not None:
        hint = {state.vm_index[n]: state.host_index[h] for n, h in start_assignment.items()}
    compiled = compile_placement(state, vms, hosts, hint=hint)
    solver = make_solver(settings, time_limit_s=time_limit_s)
    callback = None
    if progress is not None:
        callback = ProgressCallback(progress, "cp-sat", time_limit_s, OBJECTIVE_SCALE)
    status = status_of(solver.solve(compiled.model, callback))
    if status is SolveStatus.INFEASIBLE:
        reasons = explain(problem)
        raise Infeasible(f"no placement satisfies every constraint (proven by CP-SAT): {'; '.join(reasons)}")
    if status is SolveStatus.UNKNOWN:
        return None
    moves = compiled.decode(solver, hint or {})
    for v, h in moves.items():
        state.place(v, h)
    return state.assignment(), status


def solve_placement(
    problem: PlacementProblem,
    settings: SolverSettings | None = None,
    progress: ProgressFn | None = None,
    *,
    strategy: str = "auto",
) -> Placement:
    """Place every VM of ``problem`` (see the module docstring); raises :class:`Infeasible` or
    :class:`NoSolutionFound` when there is no answer."""
    if strategy not in STRATEGIES:
        raise InvalidArguments(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    settings = settings or SolverSettings()
    start = time.monotonic()
    deadline = start + settings.time_limit_s
    bound = host_lower_bound(problem)
    if bound > len(problem.hosts):
        reasons = [f"at least {bound} hosts are needed, only {len(problem.hosts)} exist"]
        raise Infeasible(
            f"no placement satisfies every constraint: {'; '.join(reasons + counting_reasons(problem))}"
        )
    initial: HeuristicResult | None = None
    # A current configuration that breaks constraints cannot be a starting point; the full model repairs it.
    if PlacementState(problem, problem.current).consistent():
        initial = best_ffd(problem)
        if not initial.complete:
            initial = filter_and_weigh(problem)
    have_start = initial is not None and initial.complete
    if strategy == "auto":
        small = len(problem.vms) * len(problem.hosts) <= FULL_MODEL_MAX_PAIRS
        strategy = "full" if small or not have_start else "lns"
    if strategy == "lns" and not have_start:
        raise NoSolutionFound("the heuristics could not place every VM, so the search has no starting point")

    method = strategy
    if strategy == "full":
        hint = initial.assignment if initial is not None and initial.complete else None
        remaining = max(0.05, deadline - time.monotonic())
        result = _full(problem, hint, settings, remaining, progress)
        if result is None:
            raise NoSolutionFound(f"no placement found within {settings.time_limit_s:g} s")
        assignment, status = result
        method = "cp-sat"
    else:
        assert initial is not None
        state = PlacementState(problem, initial.assignment)
        stats = improve(state, deadline=deadline, settings=settings, lower_bound=bound, progress=progress)
        assignment = state.assignment()
        at_bound = state.hosts_used() <= bound and state.migrations() == 0
        status = SolveStatus.OPTIMAL if at_bound else SolveStatus.FEASIBLE
        method = f"lns({stats.steps} steps, {stats.kept} kept)"

    violations = check_placement(problem, assignment)
    if violations:
        raise OptimizeError(f"internal error: the placement breaks constraints: {'; '.join(violations[:3])}")
    hosts_used, migrations, objective = placement_cost(problem, assignment)
    return Placement(
        assignment=assignment,
        status=status,
        hosts_used=hosts_used,
        migrations=migrations,
        objective=objective,
        lower_bound=bound,
        solve_s=time.monotonic() - start,
        method=method,
    )


@dataclass(frozen=True)
class Comparison:
    """The CP-SAT placement next to the baselines on the same problem."""

    placement: Placement
    ffd: HeuristicResult
    filter_weigh: HeuristicResult

    def to_dict(self) -> dict[str, object]:
        p = self.placement
        return {
            "vms": len(p.assignment),
            "hosts_cp": p.hosts_used,
            "hosts_ffd": self.ffd.hosts_used if self.ffd.complete else None,
            "hosts_filter_weigh": self.filter_weigh.hosts_used if self.filter_weigh.complete else None,
            "unplaced_ffd": len(self.ffd.unplaced),
            "unplaced_filter_weigh": len(self.filter_weigh.unplaced),
            "ffd_method": self.ffd.method,
            "lower_bound": p.lower_bound,
            "gap_to_bound": round(p.gap_to_bound, 6),
            "fewer_hosts_than_ffd": (
                round(1 - p.hosts_used / self.ffd.hosts_used, 6)
                if self.ffd.complete and self.ffd.hosts_used
                else None
            ),
            "status": p.status.value,
            "method": p.method,
            "migrations": p.migrations,
            "objective": p.objective,
            "solve_s": round(p.solve_s, 3),
        }


def compare_placement(
    problem: PlacementProblem,
    settings: SolverSettings | None = None,
    progress: ProgressFn | None = None,
    *,
    strategy: str = "auto",
) -> Comparison:
    """Solve ``problem`` and run both baselines on it."""
    placement = solve_placement(problem, settings, progress, strategy=strategy)
    return Comparison(placement, best_ffd(problem), filter_and_weigh(problem))
