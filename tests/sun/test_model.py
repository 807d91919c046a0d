"""The perceived-latency model against hand-computed cases."""

from __future__ import annotations

import pytest

from tropic.sun.contract import Placement
from tropic.sun.model import MODEL, day_latency, quorum_ms, weighted_percentile

from .helpers import MATRIX, demand


def test_reads_go_to_the_nearest_member() -> None:
    p = Placement(("A", "C", "C"), leader=1)
    assert MODEL.read_ms(MATRIX, p, "B") == 10.0  # B -> A (10) beats B -> C (90)
    assert MODEL.read_ms(MATRIX, p, "C") == 1.0


def test_a_write_goes_member_then_leader_then_a_majority() -> None:
    # members A, C, C; leader the first C. Majority of 3 is 2: the leader and one follower. Its fastest
    # follower is the other C (1 ms).
    p = Placement(("A", "C", "C"), leader=1)
    assert quorum_ms(MATRIX, p) == 1.0
    # From B: nearest member A (10), A -> leader C (100), quorum 1 => 111.
    assert MODEL.write_ms(MATRIX, p, "B") == pytest.approx(10 + 100 + 1)
    # From C: a follower in C (its region has one): 1 + rtt(C, C) 1 + quorum 1 => 3.
    assert MODEL.write_ms(MATRIX, p, "C") == pytest.approx(3.0)


def test_the_leader_alone_in_its_region_is_reached_directly() -> None:
    p = Placement(("C", "A", "B"), leader=0)
    # From C: the leader itself (no forward); quorum: the second-fastest ack needed? q=2: one follower,
    # the fastest from C is B (90).
    assert quorum_ms(MATRIX, p) == 90.0
    assert MODEL.write_ms(MATRIX, p, "C") == pytest.approx(1 + 0 + 90)


def test_five_members_need_two_acks() -> None:
    p = Placement(("A", "A", "B", "C", "C"), leader=0)
    # Followers from A: A 1, B 10, C 100, C 100; q = 3 -> two acks -> the 2nd fastest: 10.
    assert quorum_ms(MATRIX, p) == 10.0


def test_a_single_member_has_no_quorum_wait() -> None:
    p = Placement(("B",), leader=0)
    assert quorum_ms(MATRIX, p) == 0.0
    assert MODEL.write_ms(MATRIX, p, "A") == 10.0


def test_the_day_mean_and_p95_are_weighted_by_demand() -> None:
    # One step: 90 reads/s from A, 10 writes/s from A (read fraction 0.9); all members in A.
    d = demand([{"A": 100.0}], read_fraction=0.9)
    p = Placement(("A", "A", "A"), leader=0)
    # read 1; write: member is a follower in A (1) + rtt(A,A) 1 + quorum 1 = 3
    lat = day_latency(MATRIX, d, [p])
    assert lat.mean_ms == pytest.approx(0.9 * 1 + 0.1 * 3)
    assert lat.p95_ms == 3.0  # 10% of the requests are at 3 ms
    assert weighted_percentile([(1.0, 96.0), (3.0, 4.0)], 0.95) == 1.0


def test_one_placement_per_step_is_required() -> None:
    from tropic.errors import ConfigError

    with pytest.raises(ConfigError, match="one placement per step"):
        day_latency(MATRIX, demand([{"A": 1.0}, {"A": 1.0}]), [Placement(("A",))])
