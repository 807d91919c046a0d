"""How the consolidation policy searches: a greedy first solution, then CP-SAT on the whole fleet (small
fleets, provably optimal) or on neighbourhoods (large fleets), and the baselines it is compared with.

- :func:`greedy_drain`: the classic consolidation heuristic: hosts in increasing order of VM count and load
  are emptied one at a time when all their VMs fit, best fit, on the other powered hosts within the budget
  (a host that received VMs is not emptied). It is both the search's hint and a baseline.
- :func:`first_fit_decreasing`: repack every movable VM from scratch, largest first, first fit (no budget);
  with :func:`return_home` (VMs that need not move go back), the search's second start.
- :func:`improve`: the CP-SAT search, in place, until the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tropic.autopilot.policies.consolidation_cpsat import apply_solution, compile_neighbourhood
from tropic.autopilot.policies.consolidation_state import Fleet, Working
from tropic.optimize.base import SolverSettings, SolveStatus, make_solver, status_of

STEP_LIMIT_S = 0.2
MIN_HOOD, MAX_HOOD = 4, 32
STALL_STEPS = 150  # stop a search this many steps after its last improvement


def _best_fit(work: Working, v: int, mask: np.ndarray) -> int:
    """The candidate host ``v`` leaves least room on (largest remaining share of demand or memory)."""
    f = work.fleet
    idx = np.flatnonzero(mask)
    room_d = (f.cap_d[idx] - work.load_d[idx] - f.d[v]) / np.maximum(f.cap_d[idx], 1)
    room_m = (f.cap_m[idx] - work.load_m[idx] - f.m[v]) / np.maximum(f.cap_m[idx], 1)
    return int(idx[int(np.argmin(np.maximum(room_d, room_m)))])


def _size_key(f: Fleet, v: int) -> tuple[int, int]:
    return (f.m[v], f.d[v])


def greedy_drain(work: Working, budget: int, deadline: float | None = None) -> int:
    """Empty hosts greedily (see the module docstring); returns how many it emptied."""
    f = work.fleet
    fill = np.maximum(work.load_d / np.maximum(f.cap_d, 1), work.load_m / np.maximum(f.cap_m, 1))
    sources = [
        h
        for h in range(f.n_hosts)
        if work.count[h] > 0 and f.powered[h] and not f.stale_host[h] and f.pinned_count[h] == 0
    ]
    sources.sort(key=lambda h: (int(work.count[h]), float(fill[h])))
    emptied: set[int] = set()
    received = np.zeros(f.n_hosts, np.bool_)
    closed = np.zeros(f.n_hosts, np.bool_)
    for h in sources:
        if deadline is not None and time.monotonic() > deadline:
            break
        if received[h]:
            continue
        vms = sorted(work.on_host[h], key=lambda v: _size_key(f, v), reverse=True)
        if work.moved + len(vms) > budget or sum(f.cost[v] for v in vms) >= f.host_unit:
            continue  # over the budget, or the migrations would cost more than the host saves
        closed[h] = True
        placed: list[int] = []
        for v in vms:
            work.remove(v)
            mask = work.fits(v) & (work.count > 0) & ~closed
            if not mask.any():
                work.place(v, h)
                break
            dest = _best_fit(work, v, mask)
            work.place(v, dest)
            placed.append(v)
        else:
            emptied.add(h)
            for v in placed:
                received[work.assign[v]] = True
            continue
        for v in placed:  # undo a partial drain
            work.remove(v)
            work.place(v, h)
        closed[h] = False
    return len(emptied)


def first_fit_decreasing(work: Working, *, fullest_first: bool = False) -> None:
    """Repack every movable VM, largest first (memory, then demand), on the first host with room, hosts in
    order of path, powered ones first. No budget: the baseline of a from-scratch consolidation.

    ``fullest_first``: hosts in decreasing order of the memory they hold now, and each VM tries its own
    host first, so the hosts kept are the full ones and their VMs stay (the search's repack start)."""
    f = work.fleet
    movable = [v for v in range(len(f.origin)) if f.movable[v]]
    held = work.load_m.copy()
    for v in movable:
        work.remove(v)
    if fullest_first:
        order = sorted(range(f.n_hosts), key=lambda h: (not f.powered[h], -int(held[h]), h))
    else:
        order = sorted(range(f.n_hosts), key=lambda h: (not f.powered[h], h))
    rank = np.empty(f.n_hosts, np.int64)
    rank[order] = np.arange(f.n_hosts)
    movable.sort(key=lambda v: _size_key(f, v), reverse=True)
    keep = host_lower_bound(f)  # VMs whose host is among the fullest this many stay home when they fit
    for v in movable:
        mask = work.fits(v)
        home = f.origin[v]
        mask[home] = True if not f.receivable[home] else mask[home]
        if fullest_first and mask[home] and rank[home] < keep:
            work.place(v, home)
            continue
        idx = np.flatnonzero(mask)
        work.place(v, int(idx[int(np.argmin(rank[idx]))]) if len(idx) else f.origin[v])


def return_home(work: Working) -> None:
    """Move each migrated VM back to its original host when that host stays on and has room for it: a
    repack (first-fit decreasing) moves many VMs for nothing."""
    f = work.fleet
    for v in sorted(v for v, h in enumerate(work.assign) if h != f.origin[v]):
        home, now = f.origin[v], work.assign[v]
        if work.count[home] == 0:
            continue
        work.remove(v)
        work.place(v, home if not f.receivable[home] or work.fits(v)[home] else now)


def repack_start(work: Working, budget: int) -> Working | None:
    """First-fit decreasing from scratch, with the VMs that need not move sent home: a second start for
    the search, used when it is within the budget and better than ``work``."""
    alt = Working(work.fleet)
    first_fit_decreasing(alt, fullest_first=True)
    return_home(alt)
    if alt.moved <= budget and not alt.violations(budget) and alt.value() < work.value():
        return alt
    return None


@dataclass
class SearchStats:
    steps: int = 0
    kept: int = 0
    status: SolveStatus = SolveStatus.UNKNOWN  # of the full model, when one was solved
    method: str = ""


def _settings(f: Fleet) -> SolverSettings:
    return SolverSettings(time_limit_s=60.0, workers=f.config.workers, seed=f.config.seed)


def _model_hosts(work: Working) -> list[int]:
    """The hosts of the full model: every non-stale host that holds a VM (now or originally) and, of the
    empty ones, only as many of each kind (same capacities, power state, receivability) as a better
    placement could use: fewer than the hosts used now. Empty hosts of one kind are interchangeable when
    no anti-affinity group tells failure domains apart; leaving the copies out removes the symmetry that
    keeps CP-SAT from proving the current placement optimal (and runs it to the time limit every pass)."""
    f = work.fleet
    held = work.count > 0
    held[list(set(f.origin))] = True
    hosts = [h for h in range(f.n_hosts) if not f.stale_host[h]]
    if f.group_names:
        return hosts
    spare = max(0, int(np.count_nonzero(work.on())) - 1)
    kept: dict[tuple[int, int, int, bool, bool], int] = {}
    out: list[int] = []
    for h in hosts:
        if held[h]:
            out.append(h)
            continue
        kind = (int(f.cap_d[h]), int(f.cap_m[h]), int(f.cap_v[h]), bool(f.powered[h]), bool(f.receivable[h]))
        if kept.get(kind, 0) < spare:
            kept[kind] = kept.get(kind, 0) + 1
            out.append(h)
    return out


def solve_full(work: Working, budget: int, deadline: float, stats: SearchStats) -> None:
    """One CP-SAT model over every host that is not stale: optimal when CP-SAT proves it in time."""
    f = work.fleet
    hosts = _model_hosts(work)
    stats.method = "cp-sat"
    if not hosts:
        stats.status = SolveStatus.OPTIMAL
        return
    hood = compile_neighbourhood(work, hosts, budget)
    solver = make_solver(_settings(f), time_limit_s=max(0.001, deadline - time.monotonic()))
    stats.status = status_of(solver.solve(hood.model))
    stats.steps = 1
    if stats.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        apply_solution(work, hood, solver)
        stats.kept = 1


def host_lower_bound(f: Fleet) -> int:
    """The fewest hosts any placement keeps on: per resource (demand within the headroom, memory), the
    fewest hosts whose capacities, largest first, add up to the total."""
    bound = 0
    for need, caps in ((sum(f.d), f.cap_d), (sum(f.m), f.cap_m)):
        total, used = 0, 0
        for cap in sorted((int(c) for c in caps), reverse=True):
            if total >= need:
                break
            total += cap
            used += 1
        bound = max(bound, used)
    return bound


def improve(work: Working, budget: int, deadline: float, stats: SearchStats) -> None:
    """Large-neighbourhood search: a few lightly filled hosts (to empty) with a few hosts with room (to
    receive), now and then a powered-off one, re-placed by CP-SAT; kept when better."""
    f = work.fleet
    rng = np.random.default_rng(f.config.seed)
    settings = _settings(f)
    size = 8
    stall = 0
    stats.method = "lns"
    candidates = ~f.stale_host
    off_receivers = np.flatnonzero(f.receivable & ~f.powered)
    bound = host_lower_bound(f)
    while time.monotonic() < deadline and stall < STALL_STEPS:
        if int(np.count_nonzero(work.on())) <= bound:
            stats.status = SolveStatus.OPTIMAL  # no placement keeps fewer hosts on
            stats.method = "lns (at the lower bound on hosts)"
            break
        used = np.flatnonzero((work.count > 0) & candidates)
        if len(used) < 2:
            break
        fill = np.maximum(work.load_d[used] / np.maximum(f.cap_d[used], 1), work.load_m[used] / f.cap_m[used])
        drainable = f.pinned_count[used] == 0
        order = used[np.lexsort((fill, ~drainable))]
        if rng.random() < 0.5:
            # A window of the lightest hosts, re-packed among themselves to empty one or more of them.
            first = int(rng.integers(0, max(1, min(len(order) - size, 16))))
            hood = [int(h) for h in order[first : first + size]]
            others = np.zeros(0, np.int64)
        else:
            n_src = int(rng.integers(1, 3))
            pool = order[: max(n_src, min(8, len(order)))]
            hood = [int(h) for h in rng.choice(pool, size=min(n_src, len(pool)), replace=False)]
            others = np.setdiff1d(used, hood)
            others = others[f.receivable[others]]
        if len(others):
            room = np.minimum(
                (f.cap_d[others] - work.load_d[others]) / np.maximum(f.cap_d[others], 1),
                (f.cap_m[others] - work.load_m[others]) / f.cap_m[others],
            )
            weight = np.maximum(room, 0) + 0.02
            take = min(size - len(hood), len(others))
            hood += [int(h) for h in rng.choice(others, size=take, replace=False, p=weight / weight.sum())]
        if len(off_receivers) and rng.random() < 0.2:
            hood.append(int(rng.choice(off_receivers)))
            hood = list(dict.fromkeys(hood))
        compiled = compile_neighbourhood(work, hood, budget)
        remaining = deadline - time.monotonic()
        solver = make_solver(settings, time_limit_s=max(0.005, min(STEP_LIMIT_S, remaining)))
        started = time.monotonic()
        status = status_of(solver.solve(compiled.model))
        step_s = time.monotonic() - started
        stats.steps += 1
        if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            apply_solution(work, compiled, solver)
            stats.kept += 1
            stall = 0
        else:
            stall += 1
        settled = status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
        if settled and step_s < STEP_LIMIT_S / 4:
            size = min(MAX_HOOD, size + 1)
        elif not settled:
            size = max(MIN_HOOD, size - 1)
