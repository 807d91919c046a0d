"""The capacity index picks what a brute-force scan over every host would pick, in O(log M) steps."""

from __future__ import annotations

import random

import pytest

from tropic.errors import InvalidArguments
from tropic.replay.placement import CapacityIndex, HostCapacity, Policy, memory_unit


def brute_force(index: CapacityIndex, vcpus: int, memory: int, policy: Policy) -> tuple[int, int] | None:
    """The (free memory, free vCPUs) key the policy should choose, by scanning every host."""
    fits = [
        (index.free_mem[h], index.free_cpu[h])
        for h in range(len(index))
        if index.free_cpu[h] >= vcpus and index.free_mem[h] >= memory
    ]
    if not fits:
        return None
    return min(fits) if policy is Policy.BEST_FIT else max(fits)


@pytest.mark.parametrize("policy", list(Policy))
def test_random_placements_match_a_full_scan(policy: Policy) -> None:
    rng = random.Random(7)
    hosts = [HostCapacity(16, 131072), HostCapacity(32, 262144), HostCapacity(8, 65536)] * 20
    sizes = [(1, 768), (1, 1792), (2, 3584), (4, 7168), (8, 14336), (16, 114688), (2, 16384)]
    unit = memory_unit([h.memory_mib for h in hosts] + [m for _, m in sizes])
    assert unit == 256
    index = CapacityIndex(hosts, policy=policy, unit_mib=unit)
    placed: list[tuple[int, int, int]] = []
    for _ in range(3000):
        if placed and rng.random() < 0.4:
            host, vcpus, memory = placed.pop(rng.randrange(len(placed)))
            index.release(host, vcpus, memory)
            continue
        vcpus, memory = rng.choice(sizes)
        expected = brute_force(index, vcpus, memory, policy)
        host = index.place(vcpus, memory)
        if expected is None:
            assert host is None
            continue
        assert host is not None
        # The chosen host had exactly the free capacity the scan picks (ties between hosts are free).
        assert (index.free_mem[host] + memory, index.free_cpu[host] + vcpus) == expected
        placed.append((host, vcpus, memory))
    assert index.hosts_used == len({h for h, _, _ in placed})
    assert all(index.free_cpu[h] >= 0 and index.free_mem[h] >= 0 for h in range(len(index)))


def test_best_fit_packs_and_worst_fit_spreads() -> None:
    hosts = [HostCapacity(16, 16384)] * 4
    packed = CapacityIndex(hosts, policy=Policy.BEST_FIT)
    spread = CapacityIndex(hosts, policy=Policy.WORST_FIT)
    for _ in range(4):
        packed.place(2, 2048)
        spread.place(2, 2048)
    assert packed.hosts_used == 1
    assert spread.hosts_used == 4


def test_a_vm_too_big_for_any_host_is_refused_and_nothing_is_reserved() -> None:
    index = CapacityIndex([HostCapacity(4, 8192)] * 2)
    assert index.place(8, 1024) is None
    assert index.place(1, 16384) is None
    assert index.hosts_used == 0 and index.free_mem == [8192, 8192]


def test_busy_hosts_are_used_only_when_no_idle_host_fits() -> None:
    index = CapacityIndex([HostCapacity(16, 16384)] * 2, policy=Policy.BEST_FIT)
    first = index.place(2, 2048)
    assert first is not None
    index.busy(first)
    second = index.place(2, 2048)
    assert second is not None and second != first  # best fit would be `first`, but it is busy
    index.busy(second)
    third = index.place(2, 2048)
    assert third in (first, second)  # every host busy: fall back to the best busy one
    index.idle(first)
    index.idle(second)
    assert index.place(2, 2048) in (first, second)
    with pytest.raises(InvalidArguments):
        index.idle(first)


def test_bad_hosts_are_refused() -> None:
    with pytest.raises(InvalidArguments):
        CapacityIndex([])
    with pytest.raises(InvalidArguments):
        CapacityIndex([HostCapacity(0, 1024)])
