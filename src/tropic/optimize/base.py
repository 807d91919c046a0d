"""The optimizer's small contract: solver settings, solve status, progress reports and the CP-SAT solver
factory every model in this package goes through, so time limits and worker counts are set in one place.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from ortools.sat.python import cp_model

from tropic.errors import InvalidArguments


class SolveStatus(enum.Enum):
    """How good an answer is, independent of the solver that produced it."""

    OPTIMAL = "optimal"  # proven optimal (CP-SAT proof or exhaustive search)
    FEASIBLE = "feasible"  # a valid answer, not proven optimal (time limit, heuristic or LNS)
    INFEASIBLE = "infeasible"  # proven to have no answer
    UNKNOWN = "unknown"  # time ran out with no answer and no proof


@dataclass(frozen=True)
class SolverSettings:
    """Limits for one optimization run.

    ``workers`` defaults to 2 because the reference machine has two cores; more workers than cores only
    slow CP-SAT's portfolio down. ``seed`` makes runs repeatable (CP-SAT with several workers is still
    only repeatable up to timing).
    """

    time_limit_s: float = 10.0
    workers: int = 2
    seed: int = 0
    log: bool = False

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise InvalidArguments(f"time limit must be positive, got {self.time_limit_s}")
        if self.workers < 1:
            raise InvalidArguments(f"workers must be at least 1, got {self.workers}")


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report of a running solve: ``best`` is the best objective so far, if any."""

    phase: str
    elapsed_s: float
    limit_s: float
    best: float | None = None


ProgressFn = Callable[[ProgressEvent], None]


def make_solver(settings: SolverSettings, *, time_limit_s: float | None = None) -> cp_model.CpSolver:
    """A CP-SAT solver configured from ``settings`` (``time_limit_s`` overrides the settings' limit)."""
    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = settings.time_limit_s if time_limit_s is None else time_limit_s
    params.num_search_workers = settings.workers
    params.random_seed = settings.seed
    params.log_search_progress = settings.log
    return solver


def status_of(code: cp_model.CpSolverStatus) -> SolveStatus:
    """Map a CP-SAT status code to :class:`SolveStatus`."""
    if code == cp_model.OPTIMAL:
        return SolveStatus.OPTIMAL
    if code == cp_model.FEASIBLE:
        return SolveStatus.FEASIBLE
    if code == cp_model.INFEASIBLE:
        return SolveStatus.INFEASIBLE
    return SolveStatus.UNKNOWN


class ProgressCallback(cp_model.CpSolverSolutionCallback):
    """Forward every improving CP-SAT solution to a :data:`ProgressFn` (objective divided by ``scale``)."""

    def __init__(self, progress: ProgressFn, phase: str, limit_s: float, scale: int) -> None:
        super().__init__()
        self._progress = progress
        self._phase = phase
        self._limit_s = limit_s
        self._scale = scale
        self._start = time.monotonic()

    def on_solution_callback(self) -> None:
        self._progress(
            ProgressEvent(
                self._phase,
                time.monotonic() - self._start,
                self._limit_s,
                self.objective_value / self._scale,
            )
        )
