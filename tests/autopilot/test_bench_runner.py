"""The controller in the loop: a pass's moves run as transactions; a move the transaction layer refuses
never happens, is counted, and the accounting follows what committed."""

from __future__ import annotations

import numpy as np

from tropic.autopilot.base import Move, Plan, Snapshot
from tropic.autopilot.bench.datacenter import first_fit_placement
from tropic.autopilot.bench.fleet import cloudsim_fleet
from tropic.autopilot.bench.runner import run_policy
from tropic.autopilot.bench.workload import Trace


class MoveEverythingTo:
    """A careless policy: every VM to one host, every pass."""

    name = "careless"

    def __init__(self, host: str) -> None:
        self.host = host

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        moves = tuple(Move(p, self.host) for p, v in snapshot.vms.items() if not v.host.endswith(self.host))
        return Plan(self.name, moves=moves)


def trace(vms: int, steps: int = 4) -> Trace:
    return Trace("test", tuple(f"v{i}" for i in range(vms)), np.full((vms, steps), 0.1))


def test_moves_that_fit_commit_as_transactions_and_the_accounting_follows() -> None:
    t = trace(4)
    fleet = cloudsim_fleet(6, t.names)  # CloudSim memory: a running VM holds no RAM, all fit on host 5
    start = first_fit_placement(fleet)
    result = run_policy(t, fleet, start, MoveEverythingTo("/compute/bench/host-0005"))
    moved = int((start != 5).sum())
    assert result.accounting.migrations == moved == result.transactions and result.refused == 0
    assert result.accounting.active_hosts[1:] == [1, 1]  # one host active after the first pass


def test_a_move_the_model_refuses_never_happens_and_is_counted() -> None:
    t = trace(8)
    fleet = cloudsim_fleet(8, t.names, memory_enforced=True)  # 4 GB per host bind in the model
    start = first_fit_placement(fleet)
    result = run_policy(t, fleet, start, MoveEverythingTo("/compute/bench/host-0001"))
    # host-0001 cannot hold all 8 VMs' memory: memory_fits refuses the moves that would overflow it,
    # three rounds each pass; the VMs that were refused stay where they were.
    assert result.refused > 0
    assert result.transactions > result.accounting.migrations
    assert result.accounting.migrations > 0
