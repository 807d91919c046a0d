"""Compile a placement (or a neighbourhood of one) to a CP-SAT model, and read the answer back.

The model places the *free* VMs on the *free* hosts; every other VM stays where a
:class:`~tropic.optimize.placement_state.PlacementState` holds it, and only shrinks the capacities and
constraint allowances the model sees. With everything free this is the whole problem; the
large-neighbourhood search (:mod:`tropic.optimize.lns`) uses it on a few hosts at a time.

VMs that no constraint or objective term can tell apart (same size, same current host, same constraint
groups) form a *class*, and the model counts how many of each class go to each host instead of deciding
VM by VM: a tenant's batch of identical VMs is one integer variable per host rather than one boolean per
VM and host, and the model has none of the symmetry between interchangeable VMs. Interchangeable empty
hosts are ordered (host ``i+1`` is used only if host ``i`` is), which removes the symmetry between hosts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from tropic.optimize.placement import Level
from tropic.optimize.placement_state import PlacementState

# Secondary objective scale: a neighbourhood may also be asked to empty one "target" host; its load (in
# thousandths of each resource, at most 2000) is minimised below the real objective, multiplied by this.
OBJECTIVE_SCALE = 4096


@dataclass
class CompiledPlacement:
    """A CP-SAT model of a (sub-)placement; :meth:`decode` turns a solution into VM -> host moves."""

    model: cp_model.CpModel
    objective: cp_model.LinearExpr  # the real objective (host_cost * hosts + migration_cost * moves)
    secondary: cp_model.LinearExpr  # load left on the target host, in thousandths of its capacity
    classes: list[list[int]]  # VM indices of each class
    counts: dict[tuple[int, int], cp_model.IntVar]  # (class, host) -> how many of the class go there
    hosts: list[int]

    def decode(self, solver: cp_model.CpSolver, previous: Mapping[int, int]) -> dict[int, int]:
        """VM index -> host index from a solution; members stay on their ``previous`` host when they can,
        so interchangeable VMs are not shuffled for nothing."""
        out: dict[int, int] = {}
        for c, members in enumerate(self.classes):
            quota = {h: int(solver.value(v)) for (cc, h), v in self.counts.items() if cc == c}
            rest: list[int] = []
            for vm in members:
                h = previous.get(vm, -1)
                if quota.get(h, 0) > 0:
                    quota[h] -= 1
                    out[vm] = h
                else:
                    rest.append(vm)
            slots = [h for h, n in quota.items() for _ in range(n)]
            out.update(zip(rest, slots, strict=True))
        return out


def compile_placement(
    state: PlacementState,
    free_vms: Sequence[int],
    free_hosts: Sequence[int],
    *,
    hint: Mapping[int, int] | None = None,
    target: int | None = None,
    must_beat: tuple[int, int] | None = None,
) -> CompiledPlacement:
    """Model placing ``free_vms`` (unplaced in ``state``) on ``free_hosts``; all other VMs are fixed.

    ``hint`` (VM -> host) seeds the search; ``target`` is a host whose remaining load becomes a secondary
    objective, so the search makes progress towards emptying it even when no host can be freed yet.
    ``must_beat`` ``(objective, secondary)`` admits only lexicographically better answers, so a
    neighbourhood that cannot improve is refuted instead of re-solved.
    """
    p = state.problem
    model = cp_model.CpModel()
    hosts = list(free_hosts)
    original = {v.name: v.host for v in p.vms}

    # --- classes of interchangeable VMs: (vcpus, memory, current host or -1, constraint groups) -------------
    by_key: dict[tuple[int, int, int, tuple[int, ...]], list[int]] = {}
    for vm in free_vms:
        origin = original[p.vms[vm].name]
        origin_idx = -1 if origin is None else state.host_index[origin]
        key = (state.vm_cpu[vm], state.vm_mem[vm], origin_idx, tuple(sorted(state.vm_groups[vm])))
        by_key.setdefault(key, []).append(vm)
    keys = list(by_key)
    classes = [by_key[k] for k in keys]

    forced = {h for h in hosts if state.vm_count[h] > 0}  # hosts that keep fixed VMs stay in use
    used: dict[int, cp_model.IntVar] = {h: model.new_bool_var(f"used[{h}]") for h in hosts}
    for h in forced:
        model.add(used[h] == 1)

    counts: dict[tuple[int, int], cp_model.IntVar] = {}
    fits: dict[tuple[int, int], int] = {}
    for c, (cpu, mem, _, groups) in enumerate(keys):
        size = len(classes[c])
        for h in hosts:
            fit = min(size, int(state.cpu_free[h]) // cpu, int(state.mem_free[h]) // mem)
            for g in groups:
                if state.group_level[g] is Level.HOST:
                    fit = min(fit, state.group_cap[g] - int(state.group_count[g][h]))
            if fit > 0:
                counts[c, h] = model.new_int_var(0, fit, f"n[{c},{h}]")
                fits[c, h] = fit
    by_class: dict[int, list[cp_model.IntVar]] = {}
    by_host: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (c, h), var in counts.items():
        by_class.setdefault(c, []).append(var)
        by_host.setdefault(h, []).append((c, var))

    for c, members in enumerate(classes):
        model.add(cp_model.LinearExpr.sum(by_class.get(c, [])) == len(members))

    # --- capacity -----------------------------------------------------------------------------------------
    for h in hosts:
        on_h = by_host.get(h, [])
        if not on_h:
            continue
        load_cpu = cp_model.LinearExpr.weighted_sum([v for _, v in on_h], [keys[c][0] for c, _ in on_h])
        load_mem = cp_model.LinearExpr.weighted_sum([v for _, v in on_h], [keys[c][1] for c, _ in on_h])
        model.add(load_cpu <= int(state.cpu_free[h]) * used[h])
        model.add(load_mem <= int(state.mem_free[h]) * used[h])
        for c, v in on_h:
            model.add(v <= fits[c, h] * used[h])  # redundant, but a much tighter relaxation

    # --- anti-affinity and spread: per domain, what the fixed VMs leave of the cap --------------------------
    group_classes: dict[int, list[int]] = {}
    for c, k in enumerate(keys):
        for g in k[3]:
            group_classes.setdefault(g, []).append(c)
    for g, in_group in group_classes.items():
        level = state.group_level[g]
        domain = state.domain_of[level]
        free_members = sum(len(classes[c]) for c in in_group)
        per_domain: dict[int, list[cp_model.IntVar]] = {}
        for c in in_group:
            for h in hosts:
                if (c, h) in counts:
                    per_domain.setdefault(int(domain[h]), []).append(counts[c, h])
        for d, in_domain in per_domain.items():
            allowance = state.group_cap[g] - int(state.group_count[g][d])
            # Host-level caps of a single class are already in the variable's upper bound.
            if free_members > allowance and (level is not Level.HOST or len(in_domain) > 1):
                model.add(cp_model.LinearExpr.sum(in_domain) <= allowance)

    # --- region limits ------------------------------------------------------------------------------------
    regions: dict[int, list[int]] = {}
    for h in hosts:
        regions.setdefault(int(state.region_of_host[h]), []).append(h)
    for r, in_region in regions.items():
        vm_allowance = int(state.region_max_vms[r]) - int(state.region_vms[r])
        if vm_allowance < len(free_vms):
            placed = [v for h in in_region for _, v in by_host.get(h, [])]
            model.add(cp_model.LinearExpr.sum(placed) <= vm_allowance)
        host_allowance = int(state.region_max_hosts[r]) - int(state.region_hosts[r])
        new_hosts = [used[h] for h in in_region if h not in forced]
        if host_allowance < len(new_hosts):
            model.add(cp_model.LinearExpr.sum(new_hosts) <= host_allowance)

    # --- symmetry: interchangeable empty hosts are used in order --------------------------------------------
    origins = {k[2] for k in keys}
    twins: dict[tuple[int, int, int, int], list[int]] = {}
    for h in hosts:
        if h in forced or h in origins:
            continue
        twin_key = (
            int(state.cpu_free[h]),
            int(state.mem_free[h]),
            int(state.region_of_host[h]),
            int(state.domain_of[Level.FAILURE_DOMAIN][h]),
        )
        twins.setdefault(twin_key, []).append(h)
    for twin_hosts in twins.values():
        for a, b in itertools.pairwise(twin_hosts):
            model.add(used[a] >= used[b])

    # --- objective ----------------------------------------------------------------------------------------
    weights = p.objective
    hosts_term = cp_model.LinearExpr.sum([used[h] for h in hosts if h not in forced])
    stays: list[cp_model.IntVar] = []
    movable = 0
    for c, k in enumerate(keys):
        if k[2] >= 0:
            movable += len(classes[c])
            if (c, k[2]) in counts:
                stays.append(counts[c, k[2]])
    moved = movable - cp_model.LinearExpr.sum(stays)
    objective = weights.host_cost * hosts_term + weights.migration_cost * moved
    secondary = cp_model.LinearExpr.constant(0)
    if target is not None and target in by_host:
        cap_cpu, cap_mem = max(int(state.cap_cpu[target]), 1), max(int(state.cap_mem[target]), 1)
        on_target = by_host[target]
        secondary = cp_model.LinearExpr.weighted_sum(
            [v for _, v in on_target],
            [(1000 * keys[c][0]) // cap_cpu + (1000 * keys[c][1]) // cap_mem for c, _ in on_target],
        )
    total = OBJECTIVE_SCALE * objective + secondary
    model.minimize(total)
    if must_beat is not None:
        model.add(total < OBJECTIVE_SCALE * must_beat[0] + must_beat[1])

    if hint:
        for (c, h), var in counts.items():
            model.add_hint(var, sum(1 for vm in classes[c] if hint.get(vm) == h))
        hinted_hosts = set(hint.values())
        for h in hosts:
            model.add_hint(used[h], h in hinted_hosts or h in forced)
    return CompiledPlacement(model, objective, secondary, classes, counts, hosts)
