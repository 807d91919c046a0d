"""The latency a client perceives from a leader-based replicated service such as ZooKeeper.

A client region's requests enter the cloud at its attached region ``c`` (see :mod:`tropic.sun.demand`)
and go to the **nearest member**: the member region ``m`` with the smallest ``rtt(c, m)`` (ties broken
by the region's position in the placement). With ``n`` members the quorum is ``q = floor(n/2) + 1``
(ZooKeeper's majority; the leader counts itself). With ``L`` the leader's region:

* **read** (served locally by the member, as ZooKeeper does): ``read = rtt(c, m)``;
* **write** (forwarded to the leader, proposed to the followers, committed once a majority has acked,
  answered by the member): ``write = rtt(c, m) + fwd(m, L) + quorum(L)``, where

  - ``fwd(m, L) = rtt(m, L)`` (the follower <-> leader round trip: forward, then the commit coming back),
    and ``0`` when the client's member is the leader itself. In the leader's region the client is taken
    to be on a follower when the region has one (a ZooKeeper client picks its server from the
    connection string, not the leader), so ``fwd = rtt(L, L)``, the intra-region round trip; only when
    the leader is its region's only member does a client there reach it directly (``fwd = 0``);
  - ``quorum(L)`` is the ``(q - 1)``-th smallest of ``rtt(L, f)`` over the followers ``f`` (a follower in
    the leader's region: the diagonal ``rtt(L, L)``); ``0`` when ``q = 1``.

The matrix is read in the request's direction (row of the sender). A request's latency excludes the
client's own access to its region (the same under every placement) and the service time.

Over a day, each (step, client region, kind) is a mass of requests ``rate x step_s x share`` (``share``:
the read fraction or its complement) at one latency; the **mean** is their weighted mean and the
**p95** the weighted 95th percentile (the smallest latency at or under which 95% of the requests are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tropic.errors import ConfigError
from tropic.sun.contract import Demand, LatencyMatrix, Placement


def quorum_size(members: int) -> int:
    return members // 2 + 1


def nearest(matrix: LatencyMatrix, placement: Placement, region: str) -> int:
    """The index of the member a client entering at ``region`` uses (see the module docstring)."""
    row = matrix.rtt_ms[region]
    best = min(row[m] for m in placement.members)
    candidates = [i for i, m in enumerate(placement.members) if row[m] == best]
    leader_region = placement.members[placement.leader]
    if leader_region in {placement.members[i] for i in candidates}:
        followers = [i for i in candidates if i != placement.leader and placement.members[i] == leader_region]
        return followers[0] if followers else placement.leader
    return candidates[0]


def quorum_ms(matrix: LatencyMatrix, placement: Placement) -> float:
    """The leader's wait for a majority of acks (the ``(q-1)``-th fastest follower round trip)."""
    need = quorum_size(len(placement.members)) - 1
    if need <= 0:
        return 0.0
    lead = placement.members[placement.leader]
    acks = sorted(matrix.rtt(lead, m) for i, m in enumerate(placement.members) if i != placement.leader)
    return acks[need - 1]


@dataclass(frozen=True, slots=True)
class LeaderQuorum:
    """The ZooKeeper-like latency model (a :class:`~tropic.sun.contract.LatencyModel`)."""

    def read_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float:
        return matrix.rtt(region, placement.members[nearest(matrix, placement, region)])

    def write_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float:
        i = nearest(matrix, placement, region)
        member = placement.members[i]
        fwd = 0.0 if i == placement.leader else matrix.rtt(member, placement.members[placement.leader])
        return matrix.rtt(region, member) + fwd + quorum_ms(matrix, placement)


MODEL = LeaderQuorum()


def check_placement(matrix: LatencyMatrix, placement: Placement) -> None:
    if not placement.members:
        raise ConfigError("a placement needs at least one member")
    unknown = [m for m in placement.members if m not in matrix.rtt_ms]
    if unknown:
        raise ConfigError(f"placement: region {unknown[0]} is not in the latency matrix")
    if not 0 <= placement.leader < len(placement.members):
        raise ConfigError(f"placement: leader index {placement.leader} out of range")


def step_points(
    matrix: LatencyMatrix, demand: Demand, placement: Placement, step: int
) -> list[tuple[float, float]]:
    """(latency ms, requests) mass points of one step under ``placement``."""
    out: list[tuple[float, float]] = []
    reads = demand.read_fraction
    for client in demand.client_regions:
        volume = demand.rate[step].get(client, 0.0) * demand.step_s
        if volume <= 0:
            continue
        region = demand.attach[client]
        if reads > 0:
            out.append((MODEL.read_ms(matrix, placement, region), volume * reads))
        if reads < 1:
            out.append((MODEL.write_ms(matrix, placement, region), volume * (1 - reads)))
    return out


def weighted_mean(points: Sequence[tuple[float, float]]) -> float:
    total = sum(w for _, w in points)
    return sum(v * w for v, w in points) / total if total > 0 else 0.0


def weighted_percentile(points: Sequence[tuple[float, float]], q: float) -> float:
    """The smallest value at or under which a share ``q`` of the weight lies."""
    total = sum(w for _, w in points)
    if total <= 0:
        return 0.0
    acc = 0.0
    for value, w in sorted(points):
        acc += w
        if acc >= q * total - 1e-9 * total:
            return value
    return max(v for v, _ in points)


@dataclass(frozen=True, slots=True)
class DayLatency:
    mean_ms: float
    p95_ms: float
    step_mean_ms: tuple[float, ...]


def day_latency(matrix: LatencyMatrix, demand: Demand, placements: Sequence[Placement]) -> DayLatency:
    """Mean and p95 over the day of ``placements`` (one per step), weighted by demand."""
    if len(placements) != len(demand.rate):
        raise ConfigError(f"need one placement per step ({len(demand.rate)}), got {len(placements)}")
    every: list[tuple[float, float]] = []
    steps: list[float] = []
    for k, p in enumerate(placements):
        pts = step_points(matrix, demand, p, k)
        steps.append(weighted_mean(pts))
        every += pts
    return DayLatency(weighted_mean(every), weighted_percentile(every, 0.95), tuple(steps))
