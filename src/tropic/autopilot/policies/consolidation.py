"""The consolidation policy: the fewest powered hosts that hold the predicted demand within a headroom.

A pure function of a :class:`~tropic.autopilot.base.Snapshot`: it builds the problem
(:mod:`~tropic.autopilot.policies.consolidation_state`), starts from the current placement, takes the
greedy drain as a first solution, improves it with CP-SAT (one model for a small fleet, a
large-neighbourhood search for a large one, :mod:`~tropic.autopilot.policies.consolidation_search`), and
answers the difference as a :class:`~tropic.autopilot.base.Plan`: migrations (ordered so each destination
has room when its turn comes), the hosts it empties as ``power_off``, the powered-off hosts it needs as
``power_on``. ``gain`` and ``cost`` are in host-power units (see :class:`ConsolidationConfig`). When no
configuration better than the current one is found within ``time_limit`` the plan is empty and says why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from tropic.autopilot.base import Move, Plan, PolicyError, Snapshot
from tropic.autopilot.policies.consolidation_search import (
    SearchStats,
    greedy_drain,
    host_lower_bound,
    improve,
    repack_start,
    solve_full,
)
from tropic.autopilot.policies.consolidation_state import ConsolidationConfig, Fleet, Working
from tropic.optimize.base import SolveStatus

__all__ = ["ConsolidationConfig", "ConsolidationPolicy", "ConsolidationResult", "consolidate"]


@dataclass(frozen=True)
class ConsolidationResult:
    """A plan with the numbers behind it (for the benchmark and the tests)."""

    plan: Plan
    hosts_before: int  # powered hosts now
    hosts_after: int  # powered hosts after the plan
    migrations: int
    method: str
    status: str
    working: Working = field(repr=False)


def _order_moves(work: Working) -> list[int]:
    """The moved VMs in an order where each destination has room (memory and vCPUs, the limits the
    transaction layer checks) when its migration runs; a cycle is left in place at the end (the actuator
    stops at the first refused step and the next pass re-plans)."""
    f = work.fleet
    moved = [v for v, h in enumerate(work.assign) if h != f.origin[v]]
    mem = np.zeros(f.n_hosts, np.int64)
    vcpu = np.zeros(f.n_hosts, np.int64)
    for v, h in enumerate(f.origin):
        mem[h] += f.m[v]
        vcpu[h] += f.c[v]
    order: list[int] = []
    todo = sorted(moved, key=lambda v: f.vm_paths[v])
    while todo:
        rest: list[int] = []
        for v in todo:
            h, o = work.assign[v], f.origin[v]
            if mem[h] + f.m[v] <= f.cap_m[h] and vcpu[h] + f.c[v] <= f.cap_v[h]:
                mem[h] += f.m[v]
                vcpu[h] += f.c[v]
                mem[o] -= f.m[v]
                vcpu[o] -= f.c[v]
                order.append(v)
            else:
                rest.append(v)
        if len(rest) == len(todo):
            order.extend(rest)
            break
        todo = rest
    return order


def consolidate(
    snapshot: Snapshot, *, budget: int, time_limit: float, config: ConsolidationConfig | None = None
) -> ConsolidationResult:
    """Plan one consolidation pass (see the module docstring)."""
    config = config or ConsolidationConfig()
    if budget < 0:
        raise PolicyError(f"consolidation: the migration budget must not be negative, got {budget}")
    if not (time_limit > 0) or math.isinf(time_limit):
        raise PolicyError(
            f"consolidation: the time limit must be a positive number of seconds, got {time_limit}"
        )
    start = time.monotonic()
    deadline = start + time_limit
    fleet = Fleet(snapshot, config)
    powered_now = int(np.count_nonzero(fleet.powered))
    work = Working(fleet)
    idle = fleet.powered & (work.count == 0) & ~fleet.stale_host  # powered and empty: on now, off after
    value_now = work.value() + int(np.count_nonzero(idle)) * fleet.host_unit
    stats = SearchStats()
    timed_out = False
    bound = host_lower_bound(fleet)
    if time.monotonic() >= deadline:
        timed_out = True
    elif int(np.count_nonzero(work.on() | fleet.powered)) <= bound:
        # No placement keeps fewer hosts on: nothing to gain, answer the empty plan at once.
        stats.status, stats.method = SolveStatus.OPTIMAL, "lower bound on hosts"
    else:
        greedy_drain(work, budget, deadline)
        if deadline - time.monotonic() > 0.5 * time_limit:
            work = repack_start(work, budget) or work
        movable_pairs = sum(fleet.movable) * int(np.count_nonzero(~fleet.stale_host))
        if int(np.count_nonzero(work.on())) <= bound:
            # The start already reaches the lower bound on hosts: CP-SAT could only trade migrations.
            stats.status, stats.method = SolveStatus.FEASIBLE, "greedy (at the lower bound on hosts)"
        elif movable_pairs <= config.full_model_max_pairs:
            solve_full(work, budget, deadline, stats)
            timed_out = stats.status is SolveStatus.UNKNOWN
        else:
            improve(work, budget, deadline, stats)
            timed_out = time.monotonic() >= deadline
    elapsed = time.monotonic() - start

    value = work.value()
    hosts_after = int(np.count_nonzero(work.on()))
    if value >= value_now:
        if timed_out:
            why = (
                f"consolidation timed out after {elapsed:.2f} s (limit {time_limit:g} s) with no "
                "configuration better than the current one; the configuration stays as it is"
            )
        elif stats.status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE):  # proven by the full model
            why = f"the current configuration is already the best ({powered_now} powered hosts)"
        else:
            why = (
                f"the search found no configuration better than the current one ({powered_now} powered "
                f"hosts, {stats.steps} neighbourhoods in {elapsed:.2f} s)"
            )
        plan = Plan(policy="consolidation", why=why, solve_s=elapsed)
        return ConsolidationResult(plan, powered_now, powered_now, 0, stats.method, stats.status.value, work)

    on = work.on()
    power_off = tuple(fleet.host_paths[h] for h in np.flatnonzero(fleet.powered & ~on))
    received = {work.assign[v] for v in range(len(work.assign)) if work.assign[v] != fleet.origin[v]}
    power_on = tuple(fleet.host_paths[h] for h in sorted(received) if not fleet.powered[h])
    moves = tuple(
        Move(
            vm=fleet.vm_paths[v],
            dest=fleet.host_paths[work.assign[v]],
            why=f"consolidate: off {fleet.host_paths[fleet.origin[v]]}",
        )
        for v in _order_moves(work)
    )
    migration_cost = sum(fleet.cost_f[v] for v, h in enumerate(work.assign) if h != fleet.origin[v])
    gain = config.host_power * len(power_off)
    cost = migration_cost + (config.host_power + config.boot_cost) * len(power_on)
    memory_gib = sum(fleet.m[v] for v, h in enumerate(work.assign) if h != fleet.origin[v]) / 1024
    why = (
        f"consolidation: {powered_now} -> {hosts_after} powered hosts within headroom {config.headroom:g}, "
        f"{len(moves)} migrations ({memory_gib:.1f} GiB), {len(power_off)} off, {len(power_on)} on; "
        f"gain {gain:.3f} - cost {cost:.3f} host units ({stats.method}, {elapsed:.2f} s)"
    )
    plan = Plan(
        policy="consolidation",
        moves=moves,
        power_off=power_off,
        power_on=power_on,
        gain=gain,
        cost=cost,
        why=why,
        solve_s=elapsed,
    )
    return ConsolidationResult(
        plan, powered_now, hosts_after, len(moves), stats.method, stats.status.value, work
    )


class ConsolidationPolicy:
    """The :class:`~tropic.autopilot.base.Policy` plug-in around :func:`consolidate`."""

    name: str = "consolidation"

    def __init__(self, config: ConsolidationConfig | None = None) -> None:
        self.config = config or ConsolidationConfig()
        self.config.check()

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        return consolidate(snapshot, budget=budget, time_limit=time_limit, config=self.config).plan


def make_consolidation(**options: object) -> ConsolidationPolicy:
    """Build the policy from configuration options (``headroom``, ``host_power``, ...); an unknown option
    or an impossible value is a :class:`PolicyError`."""
    known = set(ConsolidationConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise PolicyError(
            f"consolidation: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return ConsolidationPolicy(ConsolidationConfig(**options))  # type: ignore[arg-type]
