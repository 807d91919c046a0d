"""Rhizoma's PsEPR deployment, expressed with the declarative overlay API, plus a node-data generator.

The formulation follows the Rhizoma paper (Middleware'09) exactly:

- node constraint: alive, lightly loaded, available, ``cpuspeed * freecpu / 100 > 1.5`` (GHz);
- group constraint: 4 regions, at most ``(Len - 1) // 4 + 1`` chosen nodes per region;
- path constraint: overlay diameter ``< DiameterMax``;
- utility: weighted average of load (0..10, weight 2, lower is better), live slices (0..10, 1, lower),
  free CPU (1..4 GHz, 3, higher), max distance from the fixed nodes to the overlay (0..500 ms, 2, lower)
  and diameter (0..1000 ms, 2, lower);
- cost 0.012 per node added, 0 per node removed; 6 to 10 nodes; objective utility - cost.

The paper does not give a number for "lightly loaded"; we use a 1-minute load average below
:data:`LIGHT_LOAD` (half the load utility's range). Generated data is rounded to 0.01 (load), 1 MHz
(CPU speed), 1 % (free CPU) and 0.1 ms (latency), so every value is an exact decimal.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from tropic.errors import InvalidArguments
from tropic.optimize.overlay import (
    LatencyBound,
    LatencyMatrix,
    LatencyMetric,
    LatencyUtility,
    NodeUtility,
    Op,
    OverlayNode,
    OverlayProblem,
    RegionSpread,
    Requirement,
)

REGIONS = ("na-east", "na-west", "europe", "asia")
LIGHT_LOAD = Fraction(5)
MIN_FREE_CPU_GHZ = Fraction(3, 2)
DIAMETER_MAX_MS = Fraction(300)
COST_PER_NODE_ADDED = Fraction("0.012")
COST_PER_NODE_REMOVED = Fraction(0)
MIN_NODES, MAX_NODES = 6, 10

# Median round-trip times between (and, on the diagonal, within) the four regions, in ms. They shape the
# generated latencies only; the solver sees the per-pair matrix.
_BASE_RTT_MS = {
    ("na-east", "na-east"): 20,
    ("na-east", "na-west"): 70,
    ("na-east", "europe"): 90,
    ("na-east", "asia"): 180,
    ("na-west", "na-west"): 20,
    ("na-west", "europe"): 150,
    ("na-west", "asia"): 120,
    ("europe", "europe"): 20,
    ("europe", "asia"): 230,
    ("asia", "asia"): 30,
}
_CPU_SPEEDS_MHZ = (1800, 2000, 2400, 2660, 3000, 3200)


@dataclass(frozen=True)
class PseprNode:
    """Monitoring data of one PlanetLab-like node (what CoMon reported to Rhizoma)."""

    name: str
    region: str
    alive: bool
    available: bool
    load: Fraction
    live_slices: int
    cpuspeed_ghz: Fraction
    freecpu_pct: int

    @property
    def free_cpu_ghz(self) -> Fraction:
        return self.cpuspeed_ghz * self.freecpu_pct / 100

    def overlay_node(self) -> OverlayNode:
        return OverlayNode(
            self.name,
            self.region,
            {
                "alive": Fraction(int(self.alive)),
                "available": Fraction(int(self.available)),
                "load": self.load,
                "slices": Fraction(self.live_slices),
                "cpuspeed": self.cpuspeed_ghz,
                "freecpu": Fraction(self.freecpu_pct),
                "free_cpu": self.free_cpu_ghz,
            },
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "region": self.region,
            "alive": self.alive,
            "available": self.available,
            "load": float(self.load),
            "live_slices": self.live_slices,
            "cpuspeed_ghz": float(self.cpuspeed_ghz),
            "freecpu_pct": self.freecpu_pct,
        }


def psepr_problem(
    nodes: Sequence[PseprNode],
    latency: LatencyMatrix,
    *,
    fixed: Sequence[str] = (),
    current: Iterable[str] = (),
    diameter_max_ms: Fraction = DIAMETER_MAX_MS,
) -> OverlayProblem:
    """Rhizoma's PsEPR problem over ``nodes`` (see the module docstring for every term)."""
    one = Fraction(1)
    return OverlayProblem(
        nodes=tuple(n.overlay_node() for n in nodes),
        latency=latency,
        min_size=MIN_NODES,
        max_size=MAX_NODES,
        requirements=(
            Requirement("alive", Op.EQ, one),
            Requirement("load", Op.LT, LIGHT_LOAD),
            Requirement("available", Op.EQ, one),
            Requirement("free_cpu", Op.GT, MIN_FREE_CPU_GHZ),
        ),
        groups=(RegionSpread(len(REGIONS)),),
        bounds=(LatencyBound(LatencyMetric.DIAMETER, diameter_max_ms),),
        utilities=(
            NodeUtility("load", Fraction(0), Fraction(10), 2, higher_is_better=False),
            NodeUtility("slices", Fraction(0), Fraction(10), 1, higher_is_better=False),
            NodeUtility("free_cpu", Fraction(1), Fraction(4), 3, higher_is_better=True),
            LatencyUtility(LatencyMetric.FIXED_DISTANCE, Fraction(0), Fraction(500), 2),
            LatencyUtility(LatencyMetric.DIAMETER, Fraction(0), Fraction(1000), 2),
        ),
        fixed=tuple(fixed),
        current=frozenset(current),
        cost_added=COST_PER_NODE_ADDED,
        cost_removed=COST_PER_NODE_REMOVED,
    )


@dataclass(frozen=True)
class PseprInstance:
    """Generated node data and the PsEPR problem built from it."""

    seed: int
    nodes: tuple[PseprNode, ...]
    fixed: tuple[str, ...]
    fixed_regions: tuple[str, ...]
    latency: LatencyMatrix
    current: tuple[str, ...]
    problem: OverlayProblem


def _base_rtt(a: str, b: str) -> int:
    return _BASE_RTT_MS.get((a, b)) or _BASE_RTT_MS[(b, a)]


def generate_psepr(
    candidates: int, seed: int, *, fixed: int = 3, diameter_max_ms: Fraction = DIAMETER_MAX_MS
) -> PseprInstance:
    """Random but repeatable PlanetLab-like node data: ``candidates`` nodes over 4 regions, ``fixed``
    fixed nodes, a symmetric latency matrix, and a current overlay of 6-8 of the candidates."""
    if candidates < 1:
        raise InvalidArguments(f"need at least one candidate, got {candidates}")
    if fixed < 0:
        raise InvalidArguments(f"the number of fixed nodes must not be negative, got {fixed}")
    rng = random.Random(seed)
    nodes: list[PseprNode] = []
    for i in range(candidates):
        region = REGIONS[i % len(REGIONS)] if i < len(REGIONS) else rng.choice(REGIONS)
        used_pct = min(100, int(rng.expovariate(1 / 15)))
        nodes.append(
            PseprNode(
                name=f"pl{i:03d}.{region}",
                region=region,
                alive=rng.random() < 0.97,
                available=rng.random() < 0.95,
                load=Fraction(min(2000, int(rng.expovariate(1 / 150))), 100),
                live_slices=rng.randint(0, 20),
                cpuspeed_ghz=Fraction(rng.choice(_CPU_SPEEDS_MHZ), 1000),
                freecpu_pct=100 - used_pct,
            )
        )
    fixed_regions = tuple(REGIONS[j % len(REGIONS)] for j in range(fixed))
    fixed_names = tuple(f"fixed{j}.{r}" for j, r in enumerate(fixed_regions))
    names = [n.name for n in nodes] + list(fixed_names)
    regions = [n.region for n in nodes] + list(fixed_regions)
    access = [Fraction(rng.randint(10, 250), 10) for _ in names]  # last-mile delay of each node
    size = len(names)
    rows = [[Fraction(0)] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1, size):
            jitter = Fraction(rng.randint(90, 115), 100)
            value = _base_rtt(regions[i], regions[j]) * jitter + access[i] + access[j]
            rows[i][j] = rows[j][i] = Fraction(round(value * 10), 10)
    latency = LatencyMatrix(tuple(names), tuple(tuple(r) for r in rows))
    current = tuple(sorted(rng.sample([n.name for n in nodes], min(candidates, rng.randint(6, 8)))))
    problem = psepr_problem(
        nodes, latency, fixed=fixed_names, current=current, diameter_max_ms=diameter_max_ms
    )
    return PseprInstance(seed, tuple(nodes), fixed_names, fixed_regions, latency, current, problem)
