"""The optimizer: declarative placement problems compiled to CP-SAT, and plans that reach their answers.

Two problem kinds share the approach (constraints plus an objective of utility minus migration cost):

- overlay selection (:class:`OverlayProblem`; Rhizoma's PsEPR deployment in :func:`psepr_problem`), solved
  exactly by :func:`solve_overlay` and checked by :func:`solve_overlay_bruteforce`;
- VM placement (:class:`PlacementProblem`), solved by :func:`solve_placement` (one CP-SAT model, or a
  large-neighbourhood search for big instances) and compared with first-fit-decreasing and a Nova-style
  filter-and-weigh scheduler by :func:`compare_placement`.

:func:`diff_placements` turns a target placement into ``spawn_vm`` / ``migrate_vm`` / ``destroy_vm``
steps, and :func:`execute_plan` submits them as transactions.
"""

from tropic.optimize.actuator import ExecutionReport, StepOutcome, StepRunner, execute_plan
from tropic.optimize.base import ProgressEvent, ProgressFn, SolverSettings, SolveStatus
from tropic.optimize.bounds import host_lower_bound
from tropic.optimize.errors import Infeasible, NoSolutionFound, OptimizeError
from tropic.optimize.heuristics import (
    PACK,
    SPREAD,
    HeuristicResult,
    WeighConfig,
    best_ffd,
    filter_and_weigh,
    first_fit_decreasing,
)
from tropic.optimize.overlay import (
    LatencyBound,
    LatencyMatrix,
    LatencyMetric,
    LatencyUtility,
    NodeUtility,
    Op,
    OverlayEvaluation,
    OverlayNode,
    OverlayProblem,
    OverlaySolution,
    RegionCap,
    RegionSpread,
    Requirement,
    evaluate,
)
from tropic.optimize.overlay_bruteforce import solve_overlay_bruteforce
from tropic.optimize.overlay_cpsat import solve_overlay
from tropic.optimize.placement import (
    VM,
    AntiAffinity,
    Host,
    Level,
    Placement,
    PlacementConstraint,
    PlacementObjective,
    PlacementProblem,
    RegionLimit,
    Spread,
    check_placement,
    placement_cost,
)
from tropic.optimize.placement_solve import Comparison, compare_placement, solve_placement
from tropic.optimize.plan import PlannedStep, diff_placements, vm_path
from tropic.optimize.psepr import PseprInstance, PseprNode, generate_psepr, psepr_problem
from tropic.optimize.workloads import Batch, generated_batch, make_hosts, trace_batch

__all__ = [
    "PACK",
    "SPREAD",
    "VM",
    "AntiAffinity",
    "Batch",
    "Comparison",
    "ExecutionReport",
    "HeuristicResult",
    "Host",
    "Infeasible",
    "LatencyBound",
    "LatencyMatrix",
    "LatencyMetric",
    "LatencyUtility",
    "Level",
    "NoSolutionFound",
    "NodeUtility",
    "Op",
    "OptimizeError",
    "OverlayEvaluation",
    "OverlayNode",
    "OverlayProblem",
    "OverlaySolution",
    "Placement",
    "PlacementConstraint",
    "PlacementObjective",
    "PlacementProblem",
    "PlannedStep",
    "ProgressEvent",
    "ProgressFn",
    "PseprInstance",
    "PseprNode",
    "RegionCap",
    "RegionLimit",
    "RegionSpread",
    "Requirement",
    "SolveStatus",
    "SolverSettings",
    "Spread",
    "StepOutcome",
    "StepRunner",
    "WeighConfig",
    "best_ffd",
    "check_placement",
    "compare_placement",
    "diff_placements",
    "evaluate",
    "execute_plan",
    "filter_and_weigh",
    "first_fit_decreasing",
    "generate_psepr",
    "generated_batch",
    "host_lower_bound",
    "make_hosts",
    "placement_cost",
    "psepr_problem",
    "solve_overlay",
    "solve_overlay_bruteforce",
    "solve_placement",
    "trace_batch",
    "vm_path",
]
