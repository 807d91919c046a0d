"""How a strategy's placement maps onto a real ensemble's members, and the round trip between members.

The model the measurements are compared with is the follow-the-sun model itself
(:mod:`tropic.sun.model`): a client uses its nearest member, which serves a read alone
(``rtt(g, m)``) and forwards a write to the leader, which commits it once a majority logged it
(``rtt(g, m) + rtt(m, L) + quorum(L)``). A real ensemble does exactly that on the emulated wide area, with
one freedom the model does not have: ZooKeeper elects its leader itself. :func:`assign_members` therefore
gives the elected member the placement's leader region; the model on the mapped ensemble is the model of
the placement (tested).

The proxy delays a connection by half the round trip of its dialer's row each way: a client's
connection to its member by ``rtt(g, m) / 2``, a follower's connection to its leader by
``rtt(f, L) / 2`` (the model reads a quorum's acks on the leader's row, ``rtt(L, f)``: the same up to the
matrix's asymmetry, under 1% on the AWS matrix).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tropic.sun.contract import LatencyMatrix, Placement

__all__ = ["assign_members", "member_rtt_ms"]


def member_rtt_ms(matrix: LatencyMatrix, regions: Sequence[str], i: int, j: int) -> float:
    """Round trip between members ``i`` and ``j`` (zero for a member and itself)."""
    return 0.0 if i == j else matrix.rtt(regions[i], regions[j])


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
