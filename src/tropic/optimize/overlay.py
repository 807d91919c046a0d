"""Declarative overlay selection (Rhizoma's formulation): which candidate nodes form an overlay.

A problem states candidate nodes with exact rational attributes, node requirements, group constraints
(per-region limits), latency bounds and an objective "weighted utility minus migration cost". This module
fixes the *meaning* of such a problem: :func:`evaluate` is the reference semantics that both the CP-SAT
compiler (:mod:`tropic.optimize.overlay_cpsat`) and the exhaustive search
(:mod:`tropic.optimize.overlay_bruteforce`) must agree with. All arithmetic is exact (``Fraction``).
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from tropic.errors import InvalidArguments
from tropic.optimize.base import SolveStatus


class Op(enum.Enum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="


_OPS: dict[Op, Callable[[Fraction, Fraction], bool]] = {
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
    Op.EQ: operator.eq,
}


@dataclass(frozen=True)
class OverlayNode:
    """A candidate node: ``attrs`` are exact numbers (booleans as 0/1)."""

    name: str
    region: str
    attrs: Mapping[str, Fraction]

    def attr(self, name: str) -> Fraction:
        try:
            return self.attrs[name]
        except KeyError:
            raise InvalidArguments(f"node {self.name!r} has no attribute {name!r}") from None


@dataclass(frozen=True)
class Requirement:
    """Node constraint: a node may be chosen only if ``attr op value`` holds."""

    attr: str
    op: Op
    value: Fraction

    def holds(self, node: OverlayNode) -> bool:
        return _OPS[self.op](node.attr(self.attr), self.value)

    def __str__(self) -> str:
        return f"{self.attr} {self.op.value} {self.value}"


@dataclass(frozen=True)
class RegionSpread:
    """Group constraint: with ``k`` nodes chosen, at most ``(k - 1) // groups + 1`` per region."""

    groups: int

    def limit(self, size: int) -> int:
        return (size - 1) // self.groups + 1


@dataclass(frozen=True)
class RegionCap:
    """At most ``max_nodes`` chosen nodes in ``region``."""

    region: str
    max_nodes: int


class LatencyMetric(enum.Enum):
    DIAMETER = "diameter"  # largest latency between two chosen nodes (0 for fewer than two)
    FIXED_DISTANCE = "fixed_distance"  # max over fixed nodes of the latency to the nearest chosen node


@dataclass(frozen=True)
class LatencyBound:
    """Path constraint: ``metric < max_ms`` (strict, as Rhizoma's ``diameter < DiameterMax``)."""

    metric: LatencyMetric
    max_ms: Fraction


@dataclass(frozen=True)
class NodeUtility:
    """A per-node utility term, averaged over the chosen nodes.

    ``util_value<`` (lower is better): ``(hi - bound(x)) / (hi - lo)``;
    ``util_value>`` (higher is better): ``(bound(x) - lo) / (hi - lo)``; ``bound(x) = max(min(x, hi), lo)``.
    """

    attr: str
    lo: Fraction
    hi: Fraction
    weight: int
    higher_is_better: bool

    def value(self, x: Fraction) -> Fraction:
        bounded = max(min(x, self.hi), self.lo)
        if self.higher_is_better:
            return (bounded - self.lo) / (self.hi - self.lo)
        return (self.hi - bounded) / (self.hi - self.lo)


@dataclass(frozen=True)
class LatencyUtility:
    """A latency utility term (always lower is better): ``(hi - bound(metric)) / (hi - lo)``."""

    metric: LatencyMetric
    lo: Fraction
    hi: Fraction
    weight: int

    def value(self, x: Fraction) -> Fraction:
        return (self.hi - max(min(x, self.hi), self.lo)) / (self.hi - self.lo)


Utility = NodeUtility | LatencyUtility
GroupConstraint = RegionSpread | RegionCap


@dataclass(frozen=True)
class LatencyMatrix:
    """Pairwise latencies in ms (``rows[i][j]`` from ``names[i]`` to ``names[j]``; may be asymmetric)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Fraction, ...], ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise InvalidArguments("latency matrix names must be unique")
        if len(self.rows) != len(self.names) or any(len(r) != len(self.names) for r in self.rows):
            raise InvalidArguments("latency matrix must be square and match its names")
        if any(x < 0 for r in self.rows for x in r):
            raise InvalidArguments("latencies must not be negative")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get(self, a: str, b: str) -> Fraction:
        return self.rows[self._index[a]][self._index[b]]


@dataclass(frozen=True)
class OverlayProblem:
    """Choose between ``min_size`` and ``max_size`` of ``nodes`` to maximise utility minus cost.

    ``fixed`` names nodes outside the choice (e.g. clients) that ``FIXED_DISTANCE`` is measured from;
    ``current`` is the overlay deployed now: choosing a node outside it costs ``cost_added``, dropping one
    of it costs ``cost_removed``. The utility is the weighted average of ``utilities`` (weights are
    non-negative integers); the objective is ``utility - cost``.
    """

    nodes: tuple[OverlayNode, ...]
    latency: LatencyMatrix
    min_size: int
    max_size: int
    utilities: tuple[Utility, ...]
    requirements: tuple[Requirement, ...] = ()
    groups: tuple[GroupConstraint, ...] = ()
    bounds: tuple[LatencyBound, ...] = ()
    fixed: tuple[str, ...] = ()
    current: frozenset[str] = frozenset()
    cost_added: Fraction = Fraction(0)
    cost_removed: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise InvalidArguments("candidate node names must be unique")
        if not 1 <= self.min_size <= self.max_size:
            raise InvalidArguments(f"need 1 <= min_size <= max_size, got {self.min_size}..{self.max_size}")
        for name in [*names, *self.fixed]:
            if name not in self.latency:
                raise InvalidArguments(f"node {name!r} is missing from the latency matrix", path=name)
        if set(self.fixed) & set(names):
            raise InvalidArguments("a fixed node cannot also be a candidate")
        if not self.utilities or sum(u.weight for u in self.utilities) <= 0:
            raise InvalidArguments("the utility needs at least one term with a positive weight")
        for u in self.utilities:
            if u.weight < 0 or not u.lo < u.hi:
                raise InvalidArguments(f"utility term {u}: need weight >= 0 and lo < hi")
            if isinstance(u, NodeUtility):
                for n in self.nodes:
                    n.attr(u.attr)
        for r in self.requirements:
            for n in self.nodes:
                n.attr(r.attr)
        for g in self.groups:
            if isinstance(g, RegionSpread) and g.groups < 1:
                raise InvalidArguments("RegionSpread needs groups >= 1")
            if isinstance(g, RegionCap) and g.max_nodes < 0:
                raise InvalidArguments("RegionCap needs max_nodes >= 0")
        if self.cost_added < 0 or self.cost_removed < 0:
            raise InvalidArguments("migration costs must not be negative")

    @property
    def total_weight(self) -> int:
        return sum(u.weight for u in self.utilities)

    def node(self, name: str) -> OverlayNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise InvalidArguments(f"unknown candidate node {name!r}", path=name)

    def eligible(self) -> tuple[OverlayNode, ...]:
        """The candidates that satisfy every node requirement."""
        return tuple(n for n in self.nodes if all(r.holds(n) for r in self.requirements))


@dataclass(frozen=True)
class OverlayEvaluation:
    """The exact value of one choice of nodes under a problem's reference semantics."""

    chosen: tuple[str, ...]
    violations: tuple[str, ...]
    metrics: Mapping[str, Fraction]
    utility: Fraction
    cost: Fraction
    added: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def objective(self) -> Fraction:
        return self.utility - self.cost


class Evaluator:
    """Reference semantics of an :class:`OverlayProblem`, with per-node values computed once so the
    exhaustive search can afford to call it for every subset."""

    def __init__(self, problem: OverlayProblem) -> None:
        self.problem = problem
        p = problem
        w = Fraction(p.total_weight)
        self._node_score: dict[str, Fraction] = {
            n.name: sum(
                (
                    Fraction(u.weight) / w * u.value(n.attr(u.attr))
                    for u in p.utilities
                    if isinstance(u, NodeUtility)
                ),
                Fraction(0),
            )
            for n in p.nodes
        }
        self._latency_terms = tuple(u for u in p.utilities if isinstance(u, LatencyUtility))
        self._weight = w
        self._region = {n.name: n.region for n in p.nodes}
        self._ok = {n.name: all(r.holds(n) for r in p.requirements) for n in p.nodes}

    def node_score(self, name: str) -> Fraction:
        """The node's weighted per-node utility ``sum(weight * util_value) / total weight``; the overlay's
        per-node utility is the average of this over the chosen nodes."""
        return self._node_score[name]

    def diameter(self, chosen: Sequence[str]) -> Fraction:
        lat = self.problem.latency
        return max((lat.get(a, b) for a in chosen for b in chosen if a != b), default=Fraction(0))

    def fixed_distance(self, chosen: Sequence[str]) -> Fraction:
        lat = self.problem.latency
        if not chosen:
            return Fraction(0)
        return max((min(lat.get(f, c) for c in chosen) for f in self.problem.fixed), default=Fraction(0))

    def metric(self, metric: LatencyMetric, chosen: Sequence[str]) -> Fraction:
        if metric is LatencyMetric.DIAMETER:
            return self.diameter(chosen)
        return self.fixed_distance(chosen)

    def violations(self, chosen: Sequence[str]) -> list[str]:
        p = self.problem
        out: list[str] = []
        k = len(chosen)
        if len(set(chosen)) != k:
            out.append("a node is chosen twice")
        if not p.min_size <= k <= p.max_size:
            out.append(f"size {k} outside {p.min_size}..{p.max_size}")
        for name in chosen:
            if name not in self._ok:
                out.append(f"{name}: not a candidate")
            elif not self._ok[name]:
                failed = [str(r) for r in p.requirements if not r.holds(p.node(name))]
                out.append(f"{name}: node constraint {', '.join(failed)} fails")
        per_region: dict[str, int] = {}
        for name in chosen:
            if name in self._region:
                per_region[self._region[name]] = per_region.get(self._region[name], 0) + 1
        for g in p.groups:
            if isinstance(g, RegionSpread):
                limit = g.limit(k) if k else 0
                out.extend(
                    f"region {r}: {c} nodes > {limit} allowed for {k} nodes"
                    for r, c in sorted(per_region.items())
                    if c > limit
                )
            elif per_region.get(g.region, 0) > g.max_nodes:
                out.append(f"region {g.region}: {per_region[g.region]} nodes > cap {g.max_nodes}")
        for b in p.bounds:
            value = self.metric(b.metric, chosen)
            if not value < b.max_ms:
                out.append(f"{b.metric.value} {value} ms is not < {b.max_ms} ms")
        return out

    def evaluate(self, chosen: Iterable[str]) -> OverlayEvaluation:
        p = self.problem
        names = tuple(chosen)
        metrics = {m.value: self.metric(m, names) for m in LatencyMetric}
        utility = Fraction(0)
        if names:
            utility = sum((self._node_score.get(n, Fraction(0)) for n in names), Fraction(0)) / len(names)
        for u in self._latency_terms:
            utility += Fraction(u.weight) / self._weight * u.value(metrics[u.metric.value])
        added = tuple(sorted(set(names) - p.current))
        removed = tuple(sorted(p.current - set(names)))
        cost = p.cost_added * len(added) + p.cost_removed * len(removed)
        return OverlayEvaluation(
            chosen=tuple(sorted(names)),
            violations=tuple(self.violations(names)),
            metrics=metrics,
            utility=utility,
            cost=cost,
            added=added,
            removed=removed,
        )

    def objective_if_feasible(self, chosen: Sequence[str]) -> Fraction | None:
        """The objective of ``chosen``, or ``None`` when it violates a constraint (fast path)."""
        p = self.problem
        k = len(chosen)
        if not p.min_size <= k <= p.max_size or not all(self._ok.get(n, False) for n in chosen):
            return None
        per_region: dict[str, int] = {}
        for n in chosen:
            per_region[self._region[n]] = per_region.get(self._region[n], 0) + 1
        for g in p.groups:
            if isinstance(g, RegionSpread):
                if max(per_region.values()) > g.limit(k):
                    return None
            elif per_region.get(g.region, 0) > g.max_nodes:
                return None
        metrics: dict[LatencyMetric, Fraction] = {}
        for b in p.bounds:
            metrics.setdefault(b.metric, self.metric(b.metric, chosen))
            if not metrics[b.metric] < b.max_ms:
                return None
        utility = sum((self._node_score[n] for n in chosen), Fraction(0)) / k
        for u in self._latency_terms:
            if u.metric not in metrics:
                metrics[u.metric] = self.metric(u.metric, chosen)
            utility += Fraction(u.weight) / self._weight * u.value(metrics[u.metric])
        added = sum(1 for n in chosen if n not in p.current)
        removed = len(p.current) - (k - added)
        return utility - p.cost_added * added - p.cost_removed * removed


def evaluate(problem: OverlayProblem, chosen: Iterable[str]) -> OverlayEvaluation:
    """The exact utility, cost, objective and constraint violations of choosing ``chosen``."""
    return Evaluator(problem).evaluate(chosen)


@dataclass(frozen=True)
class OverlaySolution:
    """An answer to an :class:`OverlayProblem`: ``evaluation`` is ``None`` when there is no answer."""

    status: SolveStatus
    evaluation: OverlayEvaluation | None
    solve_s: float
    method: str
    explored: int = 0  # subsets examined (exhaustive search) or solutions seen (CP-SAT)

    @property
    def chosen(self) -> tuple[str, ...]:
        return () if self.evaluation is None else self.evaluation.chosen

    @property
    def objective(self) -> Fraction | None:
        return None if self.evaluation is None else self.evaluation.objective
