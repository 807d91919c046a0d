"""Large-neighbourhood search for big placements: free a few hosts at a time and re-pack them with CP-SAT.

Each step picks a lightly filled *target* host plus a few other used hosts (preferring those with room in
the scarce resource), takes every VM off them, and asks CP-SAT (:mod:`tropic.optimize.placement_cpsat`) to
put those VMs back on the same hosts, emptying the target if it can. A step's model only admits answers
that lower the objective, or keep it and leave less load on the target (so later steps can finish
emptying it); the current placement is its hint. All VMs outside the neighbourhood stay fixed, so every
kept step is feasible for the whole problem. The neighbourhood grows while steps are settled quickly and
shrinks when they time out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tropic.optimize.base import (
    ProgressEvent,
    ProgressFn,
    SolverSettings,
    SolveStatus,
    make_solver,
    status_of,
)
from tropic.optimize.placement_cpsat import compile_placement
from tropic.optimize.placement_state import PlacementState

MIN_HOSTS, MAX_HOSTS = 3, 24
STEP_LIMIT_S = 0.1  # short steps: many small improvements beat a few proven-optimal ones


@dataclass
class LnsStats:
    """What a search did: steps tried, steps kept and the final neighbourhood size."""

    steps: int = 0
    kept: int = 0
    neighbourhood: int = 6


def _objective_parts(state: PlacementState, vms: list[int], hosts: list[int], target: int) -> tuple[int, int]:
    """(objective, secondary) of the neighbourhood as it stands, matching the CP-SAT model's terms."""
    p = state.problem
    host_set = set(hosts)
    used = {state.assign[v] for v in vms if state.assign[v] in host_set}
    moved = 0
    for v in vms:
        origin = p.vms[v].host
        if origin is not None and p.hosts[state.assign[v]].path != origin:
            moved += 1
    secondary = 0
    cap_cpu, cap_mem = max(int(state.cap_cpu[target]), 1), max(int(state.cap_mem[target]), 1)
    for v in state.on_host[target]:
        secondary += (1000 * state.vm_cpu[v]) // cap_cpu + (1000 * state.vm_mem[v]) // cap_mem
    return p.objective.value(len(used), moved), secondary


def improve(
    state: PlacementState,
    *,
    deadline: float,
    settings: SolverSettings,
    lower_bound: int,
    progress: ProgressFn | None = None,
    stats: LnsStats | None = None,
) -> LnsStats:
    """Improve the complete placement held by ``state`` in place until ``deadline`` (monotonic clock) or
    until it provably cannot improve (hosts at the lower bound and no migrations)."""
    stats = stats or LnsStats()
    rng = np.random.default_rng(settings.seed)
    start = time.monotonic()
    limit = deadline - start
    cap_cpu = np.maximum(state.cap_cpu, 1)
    cap_mem = np.maximum(state.cap_mem, 1)
    while time.monotonic() < deadline:
        if state.hosts_used() <= lower_bound and state.migrations() == 0:
            break
        used = np.flatnonzero(state.vm_count > 0)
        if len(used) < 2:
            break
        fill = np.maximum(
            (state.cap_cpu[used] - state.cpu_free[used]) / cap_cpu[used],
            (state.cap_mem[used] - state.mem_free[used]) / cap_mem[used],
        )
        # A lightly filled target, drawn among the few emptiest so failed targets do not repeat forever.
        order = np.argsort(fill, kind="stable")
        target = int(used[order[int(rng.integers(0, min(4, len(order))))]])
        others = used[used != target]
        # Prefer companions with room in the resource that limits the packing: each resource's free
        # fraction counts with the fleet-wide utilisation of that resource to the 4th power, so the
        # scarce resource dominates and the plentiful one only breaks ties. (Plain "least full" misses
        # hosts whose memory is full while their CPUs idle; plain "most free" drowns in plentiful memory.)
        free_cpu = state.cpu_free[others] / cap_cpu[others]
        free_mem = state.mem_free[others] / cap_mem[others]
        util_cpu = 1.0 - state.cpu_free[used].sum() / max(int(state.cap_cpu[used].sum()), 1)
        util_mem = 1.0 - state.mem_free[used].sum() / max(int(state.cap_mem[used].sum()), 1)
        room = free_cpu * util_cpu**4 + free_mem * util_mem**4 + 0.02
        take = min(stats.neighbourhood - 1, len(others))
        chosen = rng.choice(others, size=take, replace=False, p=room / room.sum())
        hosts = [target, *(int(h) for h in chosen)]
        vms = sorted(v for h in hosts for v in state.on_host[h])
        before = _objective_parts(state, vms, hosts, target)
        previous = {v: state.assign[v] for v in vms}

        state.remove_all(vms)
        compiled = compile_placement(state, vms, hosts, hint=previous, target=target, must_beat=before)
        remaining = deadline - time.monotonic()
        solver = make_solver(settings, time_limit_s=max(0.01, min(STEP_LIMIT_S, remaining)))
        step_start = time.monotonic()
        status = status_of(solver.solve(compiled.model))
        step_s = time.monotonic() - step_start
        stats.steps += 1
        moves = previous
        if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            moves = compiled.decode(solver, previous)
            stats.kept += 1
        for v, h in moves.items():
            state.place(v, h)

        # Grow the neighbourhood while steps are settled (solved or refuted) quickly; shrink it when they
        # run out of time.
        settled = status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
        if settled and step_s < STEP_LIMIT_S / 4:
            stats.neighbourhood = min(MAX_HOSTS, stats.neighbourhood + 1)
        elif not settled:
            stats.neighbourhood = max(MIN_HOSTS, stats.neighbourhood - 1)
        if progress is not None and moves is not previous:
            progress(
                ProgressEvent(
                    "lns",
                    time.monotonic() - start,
                    limit,
                    float(state.problem.objective.value(state.hosts_used(), state.migrations())),
                )
            )
    return stats
