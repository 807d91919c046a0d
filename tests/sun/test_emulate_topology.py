"""How an emulated run maps a strategy's placement onto the leader ZooKeeper elected: the leader member
takes the leader region, few members move, and the model of the mapped ensemble is the placement's."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tropic.sun.contract import LatencyMatrix, Placement
from tropic.sun.emulate.run import EmulationReport, StrategyRun
from tropic.sun.emulate.topology import assign_members, member_rtt_ms
from tropic.sun.model import MODEL

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


def test_a_member_and_itself_are_zero_apart_two_members_of_a_region_its_round_trip() -> None:
    regions = ["eu", "eu", "us"]
    assert member_rtt_ms(MATRIX, regions, 0, 0) == 0.0
    assert member_rtt_ms(MATRIX, regions, 0, 1) == 3.0
    assert member_rtt_ms(MATRIX, regions, 0, 2) == 70.0


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


def _run(name: str, model: float, measured: float) -> StrategyRun:
    return StrategyRun(
        name, model, measured, measured / model - 1, 0.0, 0.0, 0.0, model, 0, 0.0, 0.0, 0, 1, 0
    )


def _report(*runs: StrategyRun) -> EmulationReport:
    return EmulationReport(3, ("us",), (0,), 1.0, 1.0, runs, (), (), 0.0)


def test_the_ranking_is_kept_when_the_model_orders_and_free_when_it_ties() -> None:
    # the model orders all three: the measurement must too
    assert _report(_run("a", 10, 12), _run("b", 20, 23), _run("c", 60, 66)).same_ranking
    assert not _report(_run("a", 10, 24), _run("b", 20, 23), _run("c", 60, 66)).same_ranking
    # a and b tie in the model (the same placements): either measured order keeps the ranking
    assert _report(_run("a", 20.0, 24), _run("b", 20.1, 23), _run("c", 60, 66)).same_ranking
