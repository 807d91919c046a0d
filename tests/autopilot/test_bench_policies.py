"""The baselines' decisions on small fleets: LR-MMT (regression, MMT selection, power-aware placement,
underload evacuation) and Watcher's VM workload consolidation (offload, consolidation, one migration per
VM)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.autopilot.base import HostState, Snapshot, VMState
from tropic.autopilot.bench.lr_mmt import LR_WEIGHTS, LrMmt
from tropic.autopilot.bench.watcher import NoConsolidation, WatcherConsolidation

BIG = 10_000


def snapshot(
    hosts: Mapping[str, tuple[str, float]], vms: Mapping[str, tuple[str, float, float, int]]
) -> Snapshot:
    """hosts: name -> (power model, MIPS per CPU); vms: name -> (host, utilisation, MIPS, RAM MB)."""
    on: dict[str, list[str]] = {h: [] for h in hosts}
    vm_states = {}
    for name, (host, util, mips, ram) in vms.items():
        path = f"/compute/r/{host}/{name}"
        on[host].append(path)
        vm_states[path] = VMState(
            path, f"/compute/r/{host}", 1, ram, uid=name, demand=util, labels={"mips": str(mips)}
        )
    host_states = {
        f"/compute/r/{h}": HostState(
            f"/compute/r/{h}",
            "r",
            2,
            4096,
            vms=tuple(on[h]),
            labels={"power_model": model, "mips_per_cpu": str(pe)},
        )
        for h, (model, pe) in hosts.items()
    }
    return Snapshot(0.0, host_states, vm_states)


def moves(plan_moves: tuple[object, ...]) -> dict[str, str]:
    return {m.vm.rsplit("/", 1)[1]: m.dest.rsplit("/", 1)[1] for m in plan_moves}  # type: ignore[attr-defined]


def test_the_regression_weights_extrapolate_a_straight_line_one_step() -> None:
    history = 0.1 + 0.02 * np.arange(10)[::-1]  # newest first: 0.28, 0.26, ... 0.10
    assert float(history @ LR_WEIGHTS) == pytest.approx(0.30)
    assert LR_WEIGHTS.sum() == pytest.approx(1.0)


def test_lr_mmt_moves_the_smallest_vm_off_an_overloaded_host_to_the_cheapest_fit() -> None:
    # h1 (G5, 5320 MIPS) runs two VMs at 2400 + 2200 MIPS: 86% > 70% (fewer than 10 samples: the
    # static-threshold fallback). The VM with the least RAM (b, 613 MB) leaves; h2 is idle and cheap.
    s = snapshot(
        {"h1": ("g5", 2660), "h2": ("g5", 2660)},
        {"a": ("h1", 0.96, 2500, 870), "b": ("h1", 0.88, 2500, 613)},
    )
    plan = LrMmt().plan(s, budget=BIG, time_limit=1.0)
    assert moves(plan.moves) == {"b": "h2"}


def test_lr_mmt_uses_the_regression_once_ten_samples_exist() -> None:
    # A falling load on h1, from 90% to 72% of its MIPS: above the 70% fallback threshold all along, so
    # the first 9 passes move a VM; at the 10th the line predicts 70% x 1.2 < 1: not overloaded.
    pol = LrMmt()
    hosts = {"h1": ("g5", 2660), "h2": ("g5", 2660)}
    plans = []
    for k in range(10):
        u = (0.90 - 0.02 * k) * 5320 / 5000
        s = snapshot(hosts, {"a": ("h1", u, 2500, 870), "b": ("h1", u, 2500, 613)})
        plans.append(pol.plan(s, budget=BIG, time_limit=1.0))
    assert all(moves(p.moves) == {"b": "h2"} for p in plans[:9])
    assert plans[9].moves == ()


def test_lr_mmt_empties_the_least_utilised_host_onto_an_active_one() -> None:
    s = snapshot(
        {"h1": ("g4", 1860), "h2": ("g5", 2660), "h3": ("g5", 2660)},
        {"a": ("h1", 0.05, 1000, 870), "b": ("h2", 0.3, 1000, 870), "c": ("h2", 0.3, 1000, 870)},
    )
    plan = LrMmt().plan(s, budget=BIG, time_limit=1.0)
    assert moves(plan.moves) == {"a": "h2"}  # h3 is off: not a destination for an evacuation


def test_lr_mmt_leaves_a_host_whose_vms_cannot_all_go_elsewhere() -> None:
    # Two G4 hosts at 60% each: neither can take the other's load under the 70% threshold.
    s = snapshot(
        {"h1": ("g4", 1860), "h2": ("g4", 1860)},
        {"a": ("h1", 0.6, 1860 * 2 / 1, 870), "b": ("h2", 0.6, 3720, 870)},
    )
    assert LrMmt().plan(s, budget=BIG, time_limit=1.0).moves == ()


def test_lr_mmt_never_moves_a_vm_with_unknown_demand() -> None:
    s = snapshot(
        {"h1": ("g4", 1860), "h2": ("g5", 2660)},
        {"a": ("h1", 0.05, 1000, 870), "b": ("h2", 0.3, 1000, 870)},
    )
    stale = Snapshot(s.at, s.hosts, s.vms, stale=frozenset({"/compute/r/h1/a"}))
    assert LrMmt().plan(stale, budget=BIG, time_limit=1.0).moves == ()


def test_watcher_offloads_the_least_used_vm_of_an_overloaded_host_to_the_most_used_fit() -> None:
    # h1 asks 5500 MIPS of its 5320: the smallest VM (c, 500 MIPS) leaves, first fit from the most used.
    s = snapshot(
        {"h1": ("g5", 2660), "h2": ("g5", 2660), "h3": ("g5", 2660)},
        {
            "a": ("h1", 1.0, 2500, 870),
            "b": ("h1", 1.0, 2500, 870),
            "c": ("h1", 1.0, 500, 613),
            "d": ("h2", 0.8, 2500, 870),
            "e": ("h3", 0.1, 1000, 870),
        },
    )
    plan = WatcherConsolidation().plan(s, budget=BIG, time_limit=1.0)
    got = moves(plan.moves)
    assert got["c"] == "h2"  # the most used host that fits (h2: 2000 + 500 <= 5320)
    assert "a" not in got and "b" not in got


def test_watcher_consolidates_the_least_used_hosts_onto_the_most_used() -> None:
    s = snapshot(
        {"h1": ("g5", 2660), "h2": ("g5", 2660), "h3": ("g5", 2660)},
        {"a": ("h1", 0.5, 2500, 870), "b": ("h2", 0.1, 1000, 870), "c": ("h3", 0.2, 1000, 870)},
    )
    plan = WatcherConsolidation().plan(s, budget=BIG, time_limit=1.0)
    assert moves(plan.moves) == {"b": "h1", "c": "h1"}


def test_watcher_respects_memory_and_the_budget() -> None:
    s = snapshot(
        {"h1": ("g5", 2660), "h2": ("g5", 2660)},
        {"a": ("h1", 0.5, 2500, 3000), "b": ("h2", 0.1, 1000, 1740)},
    )
    assert WatcherConsolidation().plan(s, budget=BIG, time_limit=1.0).moves == ()  # 4740 MB > 4096
    s2 = snapshot(
        {"h1": ("g5", 2660), "h2": ("g5", 2660), "h3": ("g5", 2660)},
        {"a": ("h1", 0.5, 2500, 870), "b": ("h2", 0.1, 1000, 870), "c": ("h3", 0.2, 1000, 870)},
    )
    assert len(WatcherConsolidation().plan(s2, budget=1, time_limit=1.0).moves) == 1


def test_no_consolidation_never_moves() -> None:
    s = snapshot({"h1": ("g5", 2660), "h2": ("g5", 2660)}, {"a": ("h1", 0.01, 500, 613)})
    assert NoConsolidation().plan(s, budget=BIG, time_limit=1.0).empty


loads = st.lists(
    st.tuples(st.integers(0, 3), st.floats(0.0, 1.0), st.sampled_from([500, 1000, 2000])), max_size=12
)


@given(loads)
def test_watcher_never_overfills_a_destination_and_moves_each_vm_at_most_once(
    vms: list[tuple[int, float, int]],
) -> None:
    hosts = {f"h{i}": ("g5", 2660.0) for i in range(4)}
    s = snapshot(hosts, {f"v{i}": (f"h{h}", u, m, 613) for i, (h, u, m) in enumerate(vms)})
    plan = WatcherConsolidation().plan(s, budget=BIG, time_limit=1.0)
    final = {p.rsplit("/", 1)[1]: v.host.rsplit("/", 1)[1] for p, v in s.vms.items()}
    names = [m.vm for m in plan.moves]
    assert len(names) == len(set(names))
    for m in plan.moves:
        final[m.vm.rsplit("/", 1)[1]] = m.dest.rsplit("/", 1)[1]
    for h in hosts:
        mips = sum(u * m for i, (_, u, m) in enumerate(vms) if final[f"v{i}"] == h)
        received = any(m.dest.endswith(f"/{h}") for m in plan.moves)
        if received:
            assert mips <= 5320 + 1e-6
