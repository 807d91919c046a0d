"""The emulated geography and what ZooKeeper does on it: which member a client uses, the latency of a read
and of a write (the model the measurements are compared with), the delay of every proxy route, and how a
strategy's placement maps onto the ensemble's members.

ZooKeeper on an emulated wide area, with ``rtt(a, b)`` the matrix (the diagonal for two members in one
region, zero for a member and itself):

* a client in region ``g`` uses its nearest member ``s`` (ties: the leader, then the lowest index);
* a read is served by ``s`` alone: ``read = rtt(g, s)``;
* a write goes from ``s`` to the leader ``L``, which proposes it to every follower and commits once a
  quorum (itself and the ``q - 1`` nearest followers, ``q = n // 2 + 1``) logged it; ``s`` applies it
  when the commit reaches it: ``write = rtt(g, s) + rtt(s, L) + Q(L)``, ``Q(L)`` the ``(q - 1)``-th
  smallest ``rtt(f, L)`` over the followers ``f`` (zero for ``n = 1``).

The proxy delays every connection by half its pair's round trip each way: a follower's connection to its
leader by ``rtt(f, L) / 2``, a client's connection to a member by ``rtt(g, s) / 2``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from tropic.sun.contract import LatencyMatrix, Placement

__all__ = ["ZooKeeperLatency", "assign_members", "member_rtt_ms"]


def member_rtt_ms(matrix: LatencyMatrix, regions: Sequence[str], i: int, j: int) -> float:
    """Round trip between members ``i`` and ``j`` (zero for a member and itself)."""
    return 0.0 if i == j else matrix.rtt(regions[i], regions[j])


class ZooKeeperLatency:
    """The latency a request perceives on a ZooKeeper ensemble (a :class:`~tropic.sun.contract.LatencyModel`);
    see the module docstring."""

    def nearest(self, matrix: LatencyMatrix, placement: Placement, region: str) -> int:
        members = placement.members
        return min(
            range(len(members)),
            key=lambda k: (matrix.rtt(region, members[k]), k != placement.leader, k),
        )

    def quorum_ms(self, matrix: LatencyMatrix, placement: Placement) -> float:
        n = len(placement.members)
        if n == 1:
            return 0.0
        leader = placement.leader
        acks = sorted(member_rtt_ms(matrix, placement.members, f, leader) for f in range(n) if f != leader)
        return acks[n // 2 + 1 - 2]

    def read_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float:
        s = self.nearest(matrix, placement, region)
        return matrix.rtt(region, placement.members[s])

    def write_ms(self, matrix: LatencyMatrix, placement: Placement, region: str) -> float:
        s = self.nearest(matrix, placement, region)
        forward = member_rtt_ms(matrix, placement.members, s, placement.leader)
        return matrix.rtt(region, placement.members[s]) + forward + self.quorum_ms(matrix, placement)

    def mean_ms(
        self,
        matrix: LatencyMatrix,
        placement: Placement,
        weights: Mapping[str, float],
        read_fraction: float,
    ) -> float:
        """Demand-weighted mean over ``weights`` (matrix region -> requests per second)."""
        total = sum(weights.values())
        if total <= 0:
            return 0.0
        return (
            sum(
                w
                * (
                    read_fraction * self.read_ms(matrix, placement, g)
                    + (1 - read_fraction) * self.write_ms(matrix, placement, g)
                )
                for g, w in weights.items()
            )
            / total
        )


def assign_members(current: Sequence[str], placement: Placement, leader: int) -> list[str]:
    """The region of each member for ``placement`` when member ``leader`` leads the ensemble: the leader
    takes the placement's leader region, and the others the rest of its regions, as few of them moving
    as possible (a member already in a wanted region stays)."""
    if len(current) != len(placement.members):
        raise ValueError(f"the placement has {len(placement.members)} members, the ensemble {len(current)}")
    wanted = Counter(placement.members)
    target: list[str | None] = [None] * len(current)
    lead_region = placement.members[placement.leader]
    target[leader] = lead_region
    wanted[lead_region] -= 1
    for k, region in enumerate(current):
        if k != leader and wanted[region] > 0:
            target[k] = region
            wanted[region] -= 1
    rest = sorted(wanted.elements())
    return [region if region is not None else rest.pop(0) for region in target]
