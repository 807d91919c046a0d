"""The consolidation CP-SAT model of a neighbourhood: some hosts, and the movable VMs now on them.

Variables: ``x[v, h]`` (VM ``v`` ends on host ``h``), for each VM only on its own host or on receivers of
its region it fits alone; ``on[h]`` (host ``h`` is powered after the pass). Constraints: every VM on exactly
one host; per host, predicted demand <= headroom x cpus, memory <= capacity, vCPUs <= cpus x overcommit,
each counted with the VMs that stay fixed there (a host with a fixed VM stays on); per anti-affinity group
and failure domain, at most ``max(1, members there now)``; the migrations, with those made outside the
neighbourhood, within the budget. Objective (minimised, integer :data:`SCALE` units): host power for every
host on (a host switched on also pays its boot cost) plus each moved VM's migration cost. Everything outside
the neighbourhood is fixed, so any answer is valid for the whole fleet; ``must_beat`` admits only answers
better than the working placement, and the working placement is the hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from tropic.autopilot.policies.consolidation_state import Working


@dataclass
class Neighbourhood:
    model: cp_model.CpModel
    x: dict[tuple[int, int], cp_model.IntVar]
    vms: list[int]
    current: int  # the objective of the working placement on this neighbourhood


def compile_neighbourhood(work: Working, hosts: Sequence[int], budget: int) -> Neighbourhood:
    """Model re-placing every movable VM now on ``hosts`` onto ``hosts`` (see the module docstring)."""
    f = work.fleet
    free = sorted(v for h in hosts for v in work.on_host[h] if f.movable[v])
    model = cp_model.CpModel()

    fixed_d = {h: int(work.load_d[h]) for h in hosts}
    fixed_m = {h: int(work.load_m[h]) for h in hosts}
    fixed_v = {h: int(work.load_v[h]) for h in hosts}
    fixed_n = {h: int(work.count[h]) for h in hosts}
    group_fixed = [g.copy() for g in work.group_count]
    for v in free:
        h = work.assign[v]
        fixed_d[h] -= f.d[v]
        fixed_m[h] -= f.m[v]
        fixed_v[h] -= f.c[v]
        fixed_n[h] -= 1
        g = f.group_of[v]
        if g >= 0:
            group_fixed[g][f.domain[h]] -= 1

    x: dict[tuple[int, int], cp_model.IntVar] = {}
    by_host: dict[int, list[tuple[int, cp_model.IntVar]]] = {h: [] for h in hosts}
    for v in free:
        for h in hosts:
            if h != f.origin[v]:
                if not f.receivable[h] or f.region[h] != f.region[f.origin[v]]:
                    continue
                if (
                    fixed_d[h] + f.d[v] > f.cap_d[h]
                    or fixed_m[h] + f.m[v] > f.cap_m[h]
                    or fixed_v[h] + f.c[v] > f.cap_v[h]
                ):
                    continue
                g = f.group_of[v]
                if g >= 0 and group_fixed[g][f.domain[h]] >= f.group_allow[g][f.domain[h]]:
                    continue
            var = model.new_bool_var(f"x[{v},{h}]")
            x[v, h] = var
            by_host[h].append((v, var))
    per_vm: dict[int, list[cp_model.IntVar]] = {v: [] for v in free}
    for (v, _), var in x.items():
        per_vm[v].append(var)
    for v in free:
        model.add_exactly_one(per_vm[v])

    on: dict[int, cp_model.IntVar] = {}
    for h in hosts:
        on[h] = model.new_bool_var(f"on[{h}]")
        pairs = by_host[h]
        if fixed_n[h] > 0:
            model.add(on[h] == 1)
        vars_h = [var for _, var in pairs]
        if f.receivable[h]:
            for load, cap, size in (
                (fixed_d[h], int(f.cap_d[h]), f.d),
                (fixed_m[h], int(f.cap_m[h]), f.m),
                (fixed_v[h], int(f.cap_v[h]), f.c),
            ):
                if pairs:
                    expr = cp_model.LinearExpr.weighted_sum(vars_h, [size[v] for v, _ in pairs])
                    model.add(expr <= (cap - load) * on[h])
        for var in vars_h:
            model.add_implication(var, on[h])

    # Anti-affinity: per group and failure domain, the free members plus the fixed ones within allowance.
    per_group: dict[tuple[int, int], list[cp_model.IntVar]] = {}
    for (v, h), var in x.items():
        g = f.group_of[v]
        if g >= 0:
            per_group.setdefault((g, int(f.domain[h])), []).append(var)
    for (g, dom), members in per_group.items():
        allowance = int(f.group_allow[g][dom]) - int(group_fixed[g][dom])
        if len(members) > allowance:
            model.add(cp_model.LinearExpr.sum(members) <= allowance)

    # Budget: migrations relative to the original placement.
    moved_outside = work.moved - sum(1 for v in free if work.assign[v] != f.origin[v])
    stays: list[cp_model.IntVar] = [x[v, f.origin[v]] for v in free if (v, f.origin[v]) in x]
    moved_expr = len(free) - cp_model.LinearExpr.sum(stays)
    model.add(moved_expr <= max(0, budget - moved_outside))

    # Objective over the neighbourhood: hosts on, boot costs, migration costs.
    host_terms = [on[h] for h in hosts]
    host_weights = [f.host_unit if f.powered[h] else f.boot_unit for h in hosts]
    stay_weights = [f.cost[v] for v in free if (v, f.origin[v]) in x]
    constant = sum(f.cost[v] for v in free)
    objective = (
        cp_model.LinearExpr.weighted_sum(host_terms, host_weights)
        - cp_model.LinearExpr.weighted_sum(stays, stay_weights)
        + constant
    )
    current = sum(w for h, w in zip(hosts, host_weights, strict=True) if work.count[h] > 0)
    current += sum(f.cost[v] for v in free if work.assign[v] != f.origin[v])
    model.minimize(objective)
    model.add(objective < current)

    for (v, h), var in x.items():
        model.add_hint(var, work.assign[v] == h)
    for h in hosts:
        model.add_hint(on[h], bool(work.count[h] > 0))
    return Neighbourhood(model, x, free, current)


def apply_solution(work: Working, hood: Neighbourhood, solver: cp_model.CpSolver) -> None:
    """Move the neighbourhood's VMs to where ``solver``'s solution puts them."""
    target: dict[int, int] = {}
    for (v, h), var in hood.x.items():
        if solver.boolean_value(var):
            target[v] = h
    for v in hood.vms:
        if work.assign[v] != target[v]:
            work.remove(v)
            work.place(v, target[v])
