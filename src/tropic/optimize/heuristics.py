"""The baselines the CP-SAT placement is compared with, on the same input and the same constraints.

- :func:`first_fit_decreasing`: VMs sorted by decreasing size (the largest normalised resource, or the sum
  of normalised resources), each put on the first host that can take it;
- :func:`filter_and_weigh`: the OpenStack Nova scheduler's method: VMs in arrival order; hosts are filtered
  (capacity, server-group anti-affinity, spread, region limits), then weighed by the RAM and CPU weighers
  with Nova's min-max normalisation; the heaviest host wins (ties: first host). Nova's default multipliers
  (+1.0) spread VMs over all hosts; operators who want to pack set them negative, which is what
  :data:`PACK` does and what the comparison uses, since the goal is fewer hosts.

VMs that already have a host stay there; only new VMs are placed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tropic.errors import InvalidArguments
from tropic.optimize.placement import PlacementProblem
from tropic.optimize.placement_state import PlacementState


@dataclass(frozen=True)
class HeuristicResult:
    """A heuristic's placement; ``unplaced`` lists the VMs no host could take."""

    assignment: dict[str, str]
    unplaced: tuple[str, ...]
    hosts_used: int
    solve_s: float
    method: str

    @property
    def complete(self) -> bool:
        return not self.unplaced


def _initial_state(problem: PlacementProblem) -> PlacementState:
    return PlacementState(problem, problem.current)


def _finish(state: PlacementState, unplaced: list[str], start: float, method: str) -> HeuristicResult:
    return HeuristicResult(
        state.assignment(), tuple(unplaced), state.hosts_used(), time.monotonic() - start, method
    )


def first_fit_decreasing(problem: PlacementProblem, *, key: str = "max") -> HeuristicResult:
    """First fit decreasing; ``key`` is ``"max"`` (largest normalised resource) or ``"sum"``."""
    if key not in ("max", "sum"):
        raise InvalidArguments(f"unknown FFD key {key!r} (choose max or sum)")
    start = time.monotonic()
    state = _initial_state(problem)
    cpu_scale = max((h.vcpus for h in problem.hosts), default=1) or 1
    mem_scale = max((h.memory_mib for h in problem.hosts), default=1) or 1

    def size(i: int) -> tuple[float, float]:
        c, m = problem.vms[i].vcpus / cpu_scale, problem.vms[i].memory_mib / mem_scale
        return (max(c, m), c + m) if key == "max" else (c + m, max(c, m))

    todo = [i for i, v in enumerate(problem.vms) if v.host is None]
    todo.sort(key=size, reverse=True)  # stable: equal sizes keep arrival order
    unplaced: list[str] = []
    for v in todo:
        mask = state.feasible_hosts(v)
        if not mask.any():
            unplaced.append(problem.vms[v].name)
            continue
        state.place(v, int(np.argmax(mask)))
    return _finish(state, unplaced, start, f"ffd-{key}")


def best_ffd(problem: PlacementProblem) -> HeuristicResult:
    """The better of the two FFD orders (fewest unplaced VMs, then fewest hosts)."""
    results = [first_fit_decreasing(problem, key=k) for k in ("max", "sum")]
    return min(results, key=lambda r: (len(r.unplaced), r.hosts_used))


@dataclass(frozen=True)
class WeighConfig:
    """Multipliers of Nova's RAMWeigher and CPUWeigher (positive spreads, negative packs)."""

    ram_weight_multiplier: float = -1.0
    cpu_weight_multiplier: float = -1.0


PACK = WeighConfig()
SPREAD = WeighConfig(1.0, 1.0)


def _normalize(values: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Nova's ``weights.normalize``: min-max to [0, 1], all zeros when every value is equal."""
    lo, hi = values.min(), values.max()
    if lo == hi:
        return np.zeros(len(values), dtype=np.float64)
    out: npt.NDArray[np.float64] = (values - lo) / float(hi - lo)
    return out


def filter_and_weigh(problem: PlacementProblem, config: WeighConfig = PACK) -> HeuristicResult:
    """Nova-style scheduling of the new VMs, one at a time in arrival order."""
    start = time.monotonic()
    state = _initial_state(problem)
    unplaced: list[str] = []
    for v, vm in enumerate(problem.vms):
        if vm.host is not None:
            continue
        candidates = np.flatnonzero(state.feasible_hosts(v))
        if len(candidates) == 0:
            unplaced.append(vm.name)
            continue
        weight = config.ram_weight_multiplier * _normalize(state.mem_free[candidates])
        weight += config.cpu_weight_multiplier * _normalize(state.cpu_free[candidates])
        state.place(v, int(candidates[int(np.argmax(weight))]))
    return _finish(state, unplaced, start, "filter-weigh")
