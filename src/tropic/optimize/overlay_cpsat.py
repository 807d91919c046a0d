"""Compile an :class:`~tropic.optimize.overlay.OverlayProblem` to exact CP-SAT models and solve them.

CP-SAT only handles integers, and the utility averages per-node values over a *variable* number of chosen
nodes, which is not linear. The problem is therefore split into one sub-model per overlay size ``k``
(6..10 for PsEPR), each exact:

- every rational in the objective is multiplied by ``M`` (the lcm of their denominators) and latencies by
  ``q`` (the lcm of the latency denominators), so all coefficients are integers;
- the objective is further multiplied by ``L = lcm(min_size..max_size)``: with ``k`` fixed, the average
  becomes ``(L / k) * sum(M * score_i * x_i)`` with the integer coefficient ``L / k``, and values of
  different sizes stay comparable because they share the scale ``L * M``;
- clamped latency metrics are exact because clamping commutes with max/min (``bound(max min lat) =
  max min bound(lat)``); each metric is order-encoded (``ge[v]`` = "metric >= v") and the objective pushes
  it down onto its true value.

A single model with one indicator per size is also exact, but its linear relaxation is so weak that it
could not prove a 50-candidate optimum in 30 s, where the per-size models take about 3 s in total. Later
sizes only have to beat the best objective found so far, which usually makes them quick to refute. The
integer optimum divided by ``L * M`` is exactly the rational optimum of the reference semantics in
:mod:`tropic.optimize.overlay`; every answer is re-checked against it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from ortools.sat.python import cp_model

from tropic.errors import InvalidArguments
from tropic.optimize.base import (
    ProgressCallback,
    ProgressEvent,
    ProgressFn,
    SolverSettings,
    SolveStatus,
    make_solver,
    status_of,
)
from tropic.optimize.errors import OptimizeError
from tropic.optimize.overlay import (
    Evaluator,
    LatencyMetric,
    LatencyUtility,
    OverlayEvaluation,
    OverlayProblem,
    OverlaySolution,
    RegionCap,
    RegionSpread,
)


def _lcm_of_denominators(values: Iterable[Fraction]) -> int:
    out = 1
    for v in values:
        out = math.lcm(out, v.denominator)
    return out


@dataclass
class CompiledOverlay:
    """The CP-SAT model of an overlay problem for one size; ``objective / scale`` is the exact objective."""

    model: cp_model.CpModel
    x: dict[str, cp_model.IntVar]
    objective: cp_model.LinearExpr
    scale: int


def compile_overlay(problem: OverlayProblem, size: int, *, better_than: int | None = None) -> CompiledOverlay:
    """Build the exact CP-SAT model of ``problem`` restricted to overlays of ``size`` nodes.

    ``better_than`` (in the model's integer scale, shared by every size of one problem) requires a strictly
    larger objective, so a size that cannot improve on an earlier answer is refuted instead of optimised.
    """
    p = problem
    if not p.min_size <= size <= p.max_size:
        raise InvalidArguments(f"size {size} outside {p.min_size}..{p.max_size}")
    ev = Evaluator(p)
    model = cp_model.CpModel()
    cands = p.eligible()
    names = [n.name for n in cands]
    x = {n: model.new_bool_var(f"x[{n}]") for n in names}
    model.add(sum(x.values()) == size)

    # --- group constraints -----------------------------------------------------------------------------
    regions: dict[str, list[str]] = {}
    for n in cands:
        regions.setdefault(n.region, []).append(n.name)
    for g in p.groups:
        if isinstance(g, RegionSpread):
            for members in regions.values():
                model.add(sum(x[m] for m in members) <= g.limit(size))
        elif isinstance(g, RegionCap):
            model.add(sum(x[m] for m in regions.get(g.region, [])) <= g.max_nodes)

    # --- path constraints (hard latency bounds), on raw latencies -----------------------------------------
    lat = p.latency
    pair_lat = {
        (n1, n2): max(lat.get(n1, n2), lat.get(n2, n1)) for i, n1 in enumerate(names) for n2 in names[i + 1 :]
    }
    for bound in p.bounds:
        if bound.metric is LatencyMetric.DIAMETER:
            if not bound.max_ms > 0:  # even a single node has diameter 0
                model.add_bool_or([])
            for (n1, n2), value in pair_lat.items():
                if not value < bound.max_ms:
                    model.add_bool_or([~x[n1], ~x[n2]])
        else:
            if not p.fixed and not bound.max_ms > 0:
                model.add_bool_or([])
            for f in p.fixed:
                model.add_bool_or([x[n] for n in names if lat.get(f, n) < bound.max_ms])

    # --- exact integer scaling ----------------------------------------------------------------------------
    weight = Fraction(p.total_weight)
    lat_terms = [u for u in p.utilities if isinstance(u, LatencyUtility) and u.weight > 0]
    involved = [*names, *p.fixed]
    q = _lcm_of_denominators(
        [lat.get(n1, n2) for n1 in involved for n2 in involved] + [v for u in lat_terms for v in (u.lo, u.hi)]
    )
    score = {n: ev.node_score(n) for n in names}
    # Objective coefficient per latency unit (1/q ms) of each latency metric.
    per_unit = [Fraction(u.weight) / weight / (u.hi - u.lo) / q for u in lat_terms]
    m_scale = _lcm_of_denominators([*score.values(), *per_unit, p.cost_added, p.cost_removed])
    l_scale = math.lcm(*range(p.min_size, p.max_size + 1))
    lm = l_scale * m_scale

    def scaled(v: Fraction) -> int:
        out = v * lm
        if out.denominator != 1:
            raise OptimizeError(f"internal error: coefficient {v} is not integral after scaling by {lm}")
        return int(out)

    # --- utility: the per-node average (k is fixed here, so it is linear) ----------------------------------
    node_coeffs = [(l_scale // size) * int(score[n] * m_scale) for n in names]
    objective_terms: list[cp_model.LinearExpr] = [
        cp_model.LinearExpr.weighted_sum([x[n] for n in names], node_coeffs)
    ]

    # --- utility: latency metrics -------------------------------------------------------------------------
    # Order encoding: ge[v] means "metric >= v"; the metric is lo plus the steps whose literal is true.
    # Clauses such as "x_i and x_j imply ge[lat_ij]" propagate far better than big-M rows.
    for u, a in zip(lat_terms, per_unit, strict=True):
        lo, hi = int(u.lo * q), int(u.hi * q)

        def clamp(value: Fraction, lo: int = lo, hi: int = hi) -> int:
            return max(min(int(value * q), hi), lo)

        # (literals, value): unless one of the literals holds, the metric is at least value.
        needs: list[tuple[list[cp_model.BoolVarT], int]] = []
        if u.metric is LatencyMetric.DIAMETER:
            needs = [([~x[n1], ~x[n2]], clamp(value)) for (n1, n2), value in pair_lat.items()]
        else:
            for f in p.fixed:
                # Walk the candidates nearest first: the metric is at least lat(f, n) unless a nearer
                # candidate is chosen. some[n] ("a candidate up to n is chosen") is a prefix OR, which
                # keeps every clause short.
                prev: cp_model.IntVar | None = None
                nearest_first = sorted((lat.get(f, n), n) for n in names)
                for _, name in nearest_first:
                    needs.append(([] if prev is None else [prev], clamp(lat.get(f, name))))
                    some = model.new_bool_var(f"near[{f},{name}]")
                    parts = [x[name]] if prev is None else [x[name], prev]
                    model.add_bool_or([~some, *parts])
                    for part in parts:
                        model.add_implication(part, some)
                    prev = some
        steps = sorted({units for _, units in needs if units > lo})
        ge = {units: model.new_bool_var(f"{u.metric.value}>={units}") for units in steps}
        for v_low, v_high in itertools.pairwise(steps):
            model.add_implication(ge[v_high], ge[v_low])
        for lits, units in needs:
            if units > lo:
                model.add_bool_or([*lits, ge[units]])
        widths = [v - v_prev for v_prev, v in zip([lo, *steps], steps, strict=False)]
        metric = cp_model.LinearExpr.weighted_sum([ge[v] for v in steps], widths)
        # The term is a * (hi - metric), with metric = lo + the steps taken.
        objective_terms.append(scaled(a * (hi - lo)) - scaled(a) * metric)

    # --- migration cost -----------------------------------------------------------------------------------
    added = cp_model.LinearExpr.sum([x[n] for n in names if n not in p.current])
    kept = cp_model.LinearExpr.sum([x[n] for n in names if n in p.current])
    removed = len(p.current) - kept
    objective: cp_model.LinearExpr = (
        cp_model.LinearExpr.sum(objective_terms)
        - scaled(p.cost_added) * added
        - scaled(p.cost_removed) * removed
    )
    if better_than is not None:
        model.add(objective >= better_than + 1)
    model.maximize(objective)
    return CompiledOverlay(model=model, x=x, objective=objective, scale=lm)


def solve_overlay(
    problem: OverlayProblem, settings: SolverSettings | None = None, progress: ProgressFn | None = None
) -> OverlaySolution:
    """Solve ``problem`` with CP-SAT, one sub-model per size; the answer is evaluated by the reference
    semantics. The time limit is shared between the sizes (unused time carries over)."""
    settings = settings or SolverSettings()
    start = time.monotonic()
    ev = Evaluator(problem)
    sizes = list(range(problem.min_size, min(problem.max_size, len(problem.eligible())) + 1))
    best: OverlayEvaluation | None = None
    best_z: int | None = None
    proven = True
    solutions = 0
    for i, size in enumerate(sizes):
        remaining = settings.time_limit_s - (time.monotonic() - start)
        if remaining <= 0:
            proven = False
            break
        compiled = compile_overlay(problem, size, better_than=best_z)
        solver = make_solver(settings, time_limit_s=remaining / (len(sizes) - i))
        callback = None
        if progress is not None:
            callback = ProgressCallback(progress, f"size {size}", settings.time_limit_s, compiled.scale)
        status = status_of(solver.solve(compiled.model, callback))
        if status is SolveStatus.UNKNOWN:
            proven = False
        if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            continue
        proven = proven and status is SolveStatus.OPTIMAL
        solutions += 1
        chosen = [n for n, var in compiled.x.items() if solver.boolean_value(var)]
        evaluation = ev.evaluate(chosen)
        z = int(solver.value(compiled.objective))
        model_value = Fraction(z, compiled.scale)
        if not evaluation.feasible:
            raise OptimizeError(
                f"internal error: CP-SAT chose an infeasible overlay: {evaluation.violations}"
            )
        # A proven optimum must be exact; a time-limited answer may still carry slack in its metric
        # variables, so its model value can only be below the true objective of the chosen nodes.
        exact_ok = model_value == evaluation.objective
        if not exact_ok and (status is SolveStatus.OPTIMAL or model_value > evaluation.objective):
            raise OptimizeError(
                f"internal error: CP-SAT objective {model_value} differs from the exact "
                f"{evaluation.objective}"
            )
        z_true = evaluation.objective * compiled.scale
        best, best_z = evaluation, int(z_true)
        if progress is not None:
            progress(
                ProgressEvent(
                    f"size {size}",
                    time.monotonic() - start,
                    settings.time_limit_s,
                    float(evaluation.objective),
                )
            )
    elapsed = time.monotonic() - start
    if best is None:
        return OverlaySolution(
            SolveStatus.INFEASIBLE if proven else SolveStatus.UNKNOWN, None, elapsed, "cp-sat"
        )
    status = SolveStatus.OPTIMAL if proven else SolveStatus.FEASIBLE
    return OverlaySolution(status, best, elapsed, "cp-sat", solutions)
