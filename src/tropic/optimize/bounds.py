"""Lower bounds on the number of hosts a placement needs, to state how far an answer can be from optimal.

The bound is the largest of:

- per resource, the fewest hosts whose capacities (largest first) add up to the total demand;
- per resource, the number of VMs that need more than half of the largest host (no two share a host);
- per anti-affinity group (or host-level spread), ``ceil(members / max_per_host)``.
"""

from __future__ import annotations

import math

from tropic.optimize.placement import Level, PlacementProblem, RegionLimit


def _fewest_hosts(demand: int, capacities: list[int]) -> int:
    total = 0
    for used, cap in enumerate(sorted(capacities, reverse=True), 1):
        if total >= demand:
            return used - 1
        total += cap
    return len(capacities) if total >= demand else len(capacities) + 1


def host_lower_bound(problem: PlacementProblem) -> int:
    """A lower bound on the hosts any feasible placement of ``problem`` uses."""
    if not problem.vms:
        return 0
    bound = 1
    for demand, caps in (
        ([v.vcpus for v in problem.vms], [h.vcpus for h in problem.hosts]),
        ([v.memory_mib for v in problem.vms], [h.memory_mib for h in problem.hosts]),
    ):
        bound = max(bound, _fewest_hosts(sum(demand), caps))
        biggest = max(caps, default=0)
        bound = max(bound, sum(1 for d in demand if 2 * d > biggest))
    for c in problem.constraints:
        if not isinstance(c, RegionLimit) and c.level is Level.HOST:
            bound = max(bound, math.ceil(len(set(c.vms)) / c.cap))
    return bound
