"""Exhaustive search of an overlay problem: the ground truth the CP-SAT model is tested against.

It enumerates every subset of the eligible candidates and scores it with the reference semantics of
:mod:`tropic.optimize.overlay` in exact arithmetic, so it shares no scaling or linearisation with the
CP-SAT compiler. Only small problems are allowed (the default cap is 14 candidates).
"""

from __future__ import annotations

import time
from fractions import Fraction
from itertools import combinations

from tropic.errors import InvalidArguments
from tropic.optimize.base import SolveStatus
from tropic.optimize.overlay import Evaluator, OverlayProblem, OverlaySolution

MAX_CANDIDATES = 14


def solve_overlay_bruteforce(
    problem: OverlayProblem, *, max_candidates: int = MAX_CANDIDATES
) -> OverlaySolution:
    """The exact optimum of ``problem`` by enumeration; ties keep the lexicographically first node set."""
    if len(problem.nodes) > max_candidates:
        raise InvalidArguments(
            f"exhaustive search is limited to {max_candidates} candidates, got {len(problem.nodes)}"
        )
    start = time.monotonic()
    ev = Evaluator(problem)
    # Ineligible candidates can never be chosen; skipping them is the reference semantics, not a heuristic.
    names = sorted(n.name for n in problem.eligible())
    best: Fraction | None = None
    best_set: tuple[str, ...] = ()
    explored = 0
    for k in range(problem.min_size, min(problem.max_size, len(names)) + 1):
        for subset in combinations(names, k):
            explored += 1
            value = ev.objective_if_feasible(subset)
            if value is not None and (best is None or value > best):
                best, best_set = value, subset
    elapsed = time.monotonic() - start
    if best is None:
        return OverlaySolution(SolveStatus.INFEASIBLE, None, elapsed, "bruteforce", explored)
    return OverlaySolution(SolveStatus.OPTIMAL, ev.evaluate(best_set), elapsed, "bruteforce", explored)
