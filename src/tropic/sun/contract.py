"""What the follow-the-sun parts share.

* :class:`LatencyMatrix`: round-trip times between regions (the format of
  ``../shared/data/latency/aws-cloudping-p50.json``: ``{"data": {src: {dst: ms}}}``; the diagonal is the
  intra-region RTT; not necessarily symmetric).
* :class:`Demand`: requests per step per client region over a day (each client region attached to a
  region of the matrix).
* :class:`Placement`: where a leader-based service's members are (regions, one entry per member) and which
  member leads.
* :class:`StrategyDay`: one strategy's day (per-step mean latency, where the members were), and its
  figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LatencyMatrix:
    regions: tuple[str, ...]
    rtt_ms: dict[str, dict[str, float]]

    def rtt(self, a: str, b: str) -> float:
        return self.rtt_ms[a][b]


@dataclass(frozen=True, slots=True)
class Demand:
    step_s: int  # seconds per step
    client_regions: tuple[str, ...]
    attach: dict[str, str]  # client region -> region of the matrix its clients reach
    rate: tuple[dict[str, float], ...]  # per step: client region -> requests per second
    read_fraction: float = 0.9


@dataclass(frozen=True, slots=True)
class Placement:
    members: tuple[str, ...]  # a region per member
    leader: int = 0  # index into members


class LatencyModel(Protocol):
    """The latency a request from ``region`` perceives under a placement (reads at the nearest member;
    writes through the leader and a quorum)."""

    def read_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float: ...

    def write_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float: ...


@dataclass(frozen=True, slots=True)
class StrategyDay:
    strategy: str  # "static-single", "static-global", "dynamic"
    mean_ms: float
    p95_ms: float
    migrations: int
    downtime_s: float
    cost: float
    step_mean_ms: tuple[float, ...] = ()
    placements: tuple[Placement, ...] = ()  # per step
    extra: dict[str, float] = field(default_factory=dict)
