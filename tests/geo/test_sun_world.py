"""The dynamic strategy's moves as transactions: :class:`SunWorld` places a replicated service over the
regions of a latency matrix on an embedded controller, and its ``actuate`` hook turns each change of
placement into ``migrate_member`` transactions (with the pre-copy's figures from the region pair); a move
that cannot commit leaves the service where it was."""

from __future__ import annotations

import pytest

from tropic.geo.precopy import precopy
from tropic.scenario.sun_world import SunWorld
from tropic.sun.contract import LatencyMatrix, Placement

RTT = {
    "us-east-1": {"us-east-1": 5.0, "eu-west-1": 70.0, "ap-northeast-1": 150.0},
    "eu-west-1": {"us-east-1": 70.0, "eu-west-1": 5.0, "ap-northeast-1": 210.0},
    "ap-northeast-1": {"us-east-1": 150.0, "eu-west-1": 210.0, "ap-northeast-1": 5.0},
}
MATRIX = LatencyMatrix(tuple(RTT), RTT)


def test_a_change_of_placement_runs_as_migrate_member_transactions() -> None:
    world = SunWorld(MATRIX, capacity=2).start(Placement(("us-east-1", "us-east-1", "eu-west-1")))
    try:
        assert world.actuate(
            4,
            Placement(("us-east-1", "us-east-1", "eu-west-1")),
            Placement(("ap-northeast-1", "us-east-1", "eu-west-1")),
        )
        assert world.regions() == {"us-east-1": 1, "eu-west-1": 1, "ap-northeast-1": 1}
        [move] = world.moves
        assert (move.step, move.source, move.dest, move.committed) == (4, "us-east-1", "ap-northeast-1", True)
        model = precopy(4096, dirty_mib_s=20.0, bandwidth_mib_s=16 / 0.150, rtt_ms=150.0)
        assert move.downtime_s == pytest.approx(model.downtime_s, rel=1e-4)
        assert world.controller is not None and world.controller.check()["consistent"]
    finally:
        world.stop()


def test_a_move_that_cannot_commit_leaves_the_service_where_it_was() -> None:
    start = Placement(("us-east-1", "eu-west-1", "ap-northeast-1"))
    world = SunWorld(MATRIX, capacity=2).start(start)
    try:
        # two moves into us-east-1 (2 hosts, 1 taken): the first commits, the second finds no host free,
        # and the first is moved back
        target = Placement(("us-east-1", "us-east-1", "us-east-1"))
        assert not world.actuate(7, start, target)
        assert world.regions() == {"us-east-1": 1, "eu-west-1": 1, "ap-northeast-1": 1}
        made, refused, back = world.moves
        assert (made.source, made.dest, made.committed) == ("ap-northeast-1", "us-east-1", True)
        assert (refused.source, refused.committed) == ("eu-west-1", False) and "us-east-1" in refused.error
        assert (back.member, back.dest, back.committed) == (made.member, "ap-northeast-1", True)
        assert world.controller is not None and world.controller.check()["consistent"]
    finally:
        world.stop()


def test_the_dynamic_day_runs_every_move_as_a_transaction() -> None:
    """The follow-the-sun day on the shipped samples: every move the planner makes is a committed
    ``migrate_member`` transaction, and the model ends where the day's last placement says."""
    from collections import Counter

    from tropic.sun import demand as demand_mod
    from tropic.sun import strategies
    from tropic.sun.run import SunSpec, latency_sample_path, load_inputs

    spec = SunSpec(latency=latency_sample_path(), demand=demand_mod.business_sample_path())
    _, _, matrix, demand = load_inputs(spec)
    cfg = spec.config
    initial = strategies.static_global(matrix, demand, cfg).placements[0]
    world = SunWorld(matrix, capacity=cfg.capacity, memory_mib=int(cfg.memory_mib)).start(initial)
    try:
        day = strategies.dynamic(matrix, demand, cfg, initial=initial, actuate=world.actuate)
        assert day.migrations > 0  # the samples move the service during the day
        assert day.migrations == len(world.moves) and all(m.committed for m in world.moves)
        assert world.regions() == Counter(day.placements[-1].members)
        assert world.controller is not None and world.controller.check()["consistent"]
    finally:
        world.stop()
