"""The dynamic day through an embedded controller: every member move is a ``migrate_member``
transaction, the day follows what the controller committed, and a move that breaks a constraint (no
room at the destination) never executes: the member stays where it was."""

from __future__ import annotations

from tropic.sun.contract import LatencyMatrix, Placement
from tropic.sun.controlled import ControlledService
from tropic.sun.planner import SunConfig
from tropic.sun.strategies import dynamic

from .helpers import RTT, demand

LOWER = {a.lower(): {b.lower(): v for b, v in row.items()} for a, row in RTT.items()}
MATRIX = LatencyMatrix(tuple(LOWER), LOWER)
CONFIG = SunConfig(members=3, capacity=3, horizon_h=2, hysteresis=0.05, time_limit=5)
ALL_A = Placement(("a", "a", "a"), leader=0)
SHIFT = [{"a": 100.0, "c": 0.0}] * 4 + [{"a": 0.0, "c": 100.0}] * 8


def test_each_move_is_a_committed_migrate_member_transaction() -> None:
    svc = ControlledService.start(MATRIX, CONFIG, ALL_A)
    try:
        day = dynamic(MATRIX, demand(SHIFT), CONFIG, initial=ALL_A, actuate=svc.actuate)
        committed = sorted(svc.committed_regions().values())
        moved = [
            t
            for t in svc.controller.transactions()
            if t.procedure == "migrate_member" and t.state.value == "COMMITTED"
        ]
    finally:
        svc.stop()
    assert day.migrations > 0 and len(moved) == day.migrations
    assert committed == sorted(day.placements[-1].members)
    assert day.placements[-1].members.count("c") >= 2
    assert svc.refused == 0 and not svc.errors


def test_a_move_breaking_a_constraint_never_executes() -> None:
    # Each host holds one member's memory only: the first move to c fits, a second cannot.
    svc = ControlledService.start(
        MATRIX, CONFIG, Placement(("a", "b", "c"), 0), host_memory_mib=int(CONFIG.memory_mib)
    )
    try:
        before = svc.committed_regions()
        reached = svc.actuate(0, Placement(("a", "b", "c"), 0), Placement(("c", "c", "c"), 0))
        after = svc.committed_regions()
    finally:
        svc.stop()
    assert after == before  # c is full: neither member moved
    assert sorted(reached.members) == ["a", "b", "c"]
    assert svc.refused == 2 and len(svc.errors) == 2
