"""What an emulated run compares its measurements with: the latency of a read and of a write on a
ZooKeeper ensemble placed in regions, and how a strategy's placement maps onto the elected leader."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tropic.sun.contract import LatencyMatrix, Placement
from tropic.sun.emulate.topology import ZooKeeperLatency, assign_members

RTT = {
    ("us", "us"): 2.0,
    ("eu", "eu"): 3.0,
    ("ap", "ap"): 4.0,
    ("us", "eu"): 70.0,
    ("us", "ap"): 150.0,
    ("eu", "ap"): 200.0,
}
MATRIX = LatencyMatrix(
    ("us", "eu", "ap"),
    {a: {b: RTT.get((a, b), RTT.get((b, a), 0.0)) for b in ("us", "eu", "ap")} for a in ("us", "eu", "ap")},
)
MODEL = ZooKeeperLatency()


def test_reads_are_served_by_the_nearest_member() -> None:
    placement = Placement(("us", "eu", "ap"), leader=0)
    assert MODEL.read_ms(MATRIX, placement, "ap") == 4.0
    assert MODEL.read_ms(MATRIX, placement, "eu") == 3.0


def test_a_write_goes_through_the_leader_and_its_nearest_quorum() -> None:
    placement = Placement(("us", "eu", "ap"), leader=0)
    # quorum of 3: the leader and its nearest follower (eu, 70 ms)
    assert MODEL.quorum_ms(MATRIX, placement) == 70.0
    assert MODEL.write_ms(MATRIX, placement, "us") == 2.0 + 0.0 + 70.0  # at the leader itself
    assert MODEL.write_ms(MATRIX, placement, "ap") == 4.0 + 150.0 + 70.0  # forwarded by the ap member
    five = Placement(("us", "us", "eu", "ap", "ap"), leader=0)
    assert MODEL.quorum_ms(MATRIX, five) == 70.0  # quorum of 5: the leader and two nearest followers


def test_members_sharing_a_region_see_its_intra_region_round_trip() -> None:
    single = Placement(("eu", "eu", "eu"), leader=1)
    assert MODEL.quorum_ms(MATRIX, single) == 3.0
    # a tie between members of one region goes to the leader: no forward
    assert MODEL.write_ms(MATRIX, single, "us") == 70.0 + 3.0
    assert MODEL.mean_ms(MATRIX, single, {"us": 1.0}, 0.9) == 0.9 * 70.0 + 0.1 * 73.0


def test_the_elected_leader_takes_the_leader_region_and_few_members_move() -> None:
    placement = Placement(("us", "eu", "ap"), leader=2)  # the leader should be in ap
    assert assign_members(["us", "eu", "ap"], placement, leader=2) == ["us", "eu", "ap"]
    # member 0 leads: it moves to ap, and the ap member takes its old region
    assert assign_members(["us", "eu", "ap"], placement, leader=0) == ["ap", "eu", "us"]


@given(
    st.lists(st.sampled_from(["us", "eu", "ap"]), min_size=1, max_size=5).flatmap(
        lambda cur: st.tuples(
            st.just(cur),
            st.lists(st.sampled_from(["us", "eu", "ap"]), min_size=len(cur), max_size=len(cur)),
            st.integers(0, len(cur) - 1),
            st.integers(0, len(cur) - 1),
        )
    )
)
def test_assignment_realises_the_placement(case: tuple[list[str], list[str], int, int]) -> None:
    current, regions, lead_index, elected = case
    placement = Placement(tuple(regions), leader=lead_index)
    target = assign_members(current, placement, leader=elected)
    assert Counter(target) == Counter(regions)
    assert target[elected] == regions[lead_index]
    # the model on the mapped ensemble is the placement's model
    for g in ("us", "eu", "ap"):
        mapped = Placement(tuple(target), leader=elected)
        assert MODEL.write_ms(MATRIX, mapped, g) == MODEL.write_ms(MATRIX, placement, g)
        assert MODEL.read_ms(MATRIX, mapped, g) == MODEL.read_ms(MATRIX, placement, g)
    # no member moves that could stay: moves <= regions wanted that no member holds yet
    moved = sum(1 for a, b in zip(current, target, strict=True) if a != b)
    missing = sum((Counter(regions) - Counter(current)).values())
    assert moved <= missing + 2  # the leader's move may displace one more
