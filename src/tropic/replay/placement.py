"""Placement for a replay: pick a host for each arriving VM from an index of free capacity.

Every host is keyed by its free (memory, vCPU slots). A segment tree over free memory, whose nodes hold a
bit mask of the free-vCPU counts present below them, finds the host with the least free memory (then the
fewest free vCPUs) that still fits a VM in O(log M) steps for M memory units, whatever the number of
hosts. The same tree answers the opposite question (most free memory) for a spreading policy.

Hosts with a transaction in flight are held in a second tree (:meth:`CapacityIndex.busy`): placing a VM
there would only queue its spawn behind that transaction's host lock, so the policy first looks among
idle hosts and falls back to the held ones (the same query on the second tree) only when none fits.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tropic.errors import InvalidArguments

MAX_MEMORY_UNITS = 1 << 16
"""Largest number of free-memory buckets; a finer unit would be coarsened (conservatively) to this."""


class Policy(enum.Enum):
    BEST_FIT = "best-fit"  # least free memory that fits, then fewest free vCPUs: packs hosts tightly
    WORST_FIT = "worst-fit"  # most free memory, then most free vCPUs: spreads VMs over hosts


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """What one host offers: ``vcpu_slots`` is its CPUs times the allowed overcommit, rounded down."""

    vcpu_slots: int
    memory_mib: int


def memory_unit(sizes_mib: Iterable[int]) -> int:
    """The largest unit all these memory sizes (hosts' and VMs') are multiples of."""
    return math.gcd(*sizes_mib) or 1


class _Tree:
    """Hosts keyed by free (memory units, vCPU slots): a segment tree over free memory whose nodes hold a
    bit mask of the free-vCPU counts present below them."""

    def __init__(self, leaves: int, max_cpu: int) -> None:
        self.size = 1 << max(0, (leaves - 1).bit_length())
        self.max_cpu = max_cpu
        self.tree = [0] * (2 * self.size)  # OR of the free-vCPU bit masks below each node
        self.cells: dict[tuple[int, int], dict[int, None]] = {}  # (memory units, vCPUs) -> hosts
        self.key: dict[int, tuple[int, int]] = {}

    def insert(self, host: int, key: tuple[int, int]) -> None:
        self.key[host] = key
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = {}
        cell[host] = None
        if len(cell) == 1:
            self._set_leaf(key[0], self.tree[self.size + key[0]] | (1 << key[1]))

    def remove(self, host: int) -> None:
        key = self.key.pop(host)
        cell = self.cells[key]
        del cell[host]
        if not cell:
            del self.cells[key]
            self._set_leaf(key[0], self.tree[self.size + key[0]] & ~(1 << key[1]))

    def find(self, need_mem: int, need_cpu: int, best_fit: bool) -> int | None:
        if best_fit:
            leaf = self._first(1, 0, self.size - 1, need_mem, need_cpu)
        else:
            leaf = self._last(1, 0, self.size - 1, need_mem, need_cpu)
        if leaf < 0:
            return None
        mask = self.tree[self.size + leaf] >> need_cpu
        low = (mask & -mask) if best_fit else mask  # best fit: fewest free vCPUs; else the most
        cpu = low.bit_length() - 1 + need_cpu
        return next(iter(self.cells[(leaf, cpu)]))

    def _set_leaf(self, leaf: int, mask: int) -> None:
        tree = self.tree
        i = self.size + leaf
        tree[i] = mask
        i >>= 1
        while i:
            tree[i] = tree[2 * i] | tree[2 * i + 1]
            i >>= 1

    def _first(self, node: int, lo: int, hi: int, start: int, cpu: int) -> int:
        """Leftmost leaf in ``[start, hi]`` under ``node`` with a free-vCPU count >= ``cpu``, or -1."""
        if hi < start or not self.tree[node] >> cpu:
            return -1
        if lo == hi:
            return lo
        mid = (lo + hi) // 2
        found = self._first(2 * node, lo, mid, start, cpu)
        return found if found >= 0 else self._first(2 * node + 1, mid + 1, hi, start, cpu)

    def _last(self, node: int, lo: int, hi: int, start: int, cpu: int) -> int:
        """Rightmost leaf in ``[start, hi]`` under ``node`` with a free-vCPU count >= ``cpu``, or -1."""
        if hi < start or not self.tree[node] >> cpu:
            return -1
        if lo == hi:
            return lo
        mid = (lo + hi) // 2
        found = self._last(2 * node + 1, mid + 1, hi, start, cpu)
        return found if found >= 0 else self._last(2 * node, lo, mid, start, cpu)


class CapacityIndex:
    """Free capacity of every host, with O(log M) placement queries and updates.

    Hosts are numbered by their position in ``hosts``. :meth:`place` reserves room on the chosen host;
    :meth:`release` gives it back; :meth:`reserve` takes room on a given host even if that makes its free
    capacity negative (a host in deficit is simply never chosen until it has room again).
    """

    def __init__(self, hosts: Sequence[HostCapacity], *, policy: Policy = Policy.BEST_FIT, unit_mib: int = 0):
        if not hosts:
            raise InvalidArguments("placement needs at least one host")
        for h in hosts:
            if h.vcpu_slots < 1 or h.memory_mib < 1:
                raise InvalidArguments(f"a host needs positive vCPUs and memory, got {h}")
        self.policy = policy
        top_mem = max(h.memory_mib for h in hosts)
        # Exact when every host and VM memory size is a multiple of the unit (see memory_unit).
        unit = unit_mib if unit_mib > 0 else 1
        # Coarser units only ever under-state free memory, so a chosen host always really fits.
        self.unit_mib = max(unit, -(-top_mem // MAX_MEMORY_UNITS))
        self.capacity = list(hosts)
        self.free_cpu = [h.vcpu_slots for h in hosts]
        self.free_mem = [h.memory_mib for h in hosts]
        self.vms = [0] * len(hosts)
        self.in_flight = [0] * len(hosts)
        self.hosts_used = 0
        self.max_cpu = max(h.vcpu_slots for h in hosts)
        leaves = top_mem // self.unit_mib + 1
        self._idle = _Tree(leaves, self.max_cpu)
        self._held = _Tree(leaves, self.max_cpu)  # hosts with a transaction in flight (see busy)
        self._size = self._idle.size
        for i in range(len(hosts)):
            self._idle.insert(i, self._bucket(i))

    def __len__(self) -> int:
        return len(self.capacity)

    # --- queries and updates ----------------------------------------------------------------------------
    def find(self, vcpus: int, memory_mib: int) -> int | None:
        """The host the policy picks for a VM of this size, or None when no host has room."""
        need_cpu = vcpus
        need_mem = -(-memory_mib // self.unit_mib)
        if need_cpu > self.max_cpu or need_mem >= self._size:
            return None
        best_fit = self.policy is Policy.BEST_FIT
        host = self._idle.find(need_mem, need_cpu, best_fit)
        if host is None:
            host = self._held.find(need_mem, need_cpu, best_fit)
        return host

    def place(self, vcpus: int, memory_mib: int) -> int | None:
        """Choose a host for a VM and reserve its room there; None (nothing reserved) when none fits."""
        host = self.find(vcpus, memory_mib)
        if host is not None:
            self.reserve(host, vcpus, memory_mib)
        return host

    def reserve(self, host: int, vcpus: int, memory_mib: int) -> None:
        tree = self._tree_of(host)
        tree.remove(host)
        self.free_cpu[host] -= vcpus
        self.free_mem[host] -= memory_mib
        self.vms[host] += 1
        if self.vms[host] == 1:
            self.hosts_used += 1
        tree.insert(host, self._bucket(host))

    def release(self, host: int, vcpus: int, memory_mib: int) -> None:
        if self.vms[host] < 1:
            raise InvalidArguments(f"host {host} holds no VM to release")
        tree = self._tree_of(host)
        tree.remove(host)
        self.free_cpu[host] += vcpus
        self.free_mem[host] += memory_mib
        self.vms[host] -= 1
        if self.vms[host] == 0:
            self.hosts_used -= 1
        tree.insert(host, self._bucket(host))

    def busy(self, host: int) -> None:
        """A transaction on ``host`` is in flight: prefer other hosts until it is :meth:`idle`."""
        self.in_flight[host] += 1
        if self.in_flight[host] == 1:
            self._idle.remove(host)
            self._held.insert(host, self._bucket(host))

    def idle(self, host: int) -> None:
        if self.in_flight[host] < 1:
            raise InvalidArguments(f"host {host} has no transaction in flight")
        self.in_flight[host] -= 1
        if self.in_flight[host] == 0:
            self._held.remove(host)
            self._idle.insert(host, self._bucket(host))

    # --- the index ----------------------------------------------------------------------------------------
    def _tree_of(self, host: int) -> _Tree:
        return self._held if self.in_flight[host] else self._idle

    def _bucket(self, host: int) -> tuple[int, int]:
        mem = max(0, self.free_mem[host]) // self.unit_mib
        return min(mem, self._size - 1), max(0, min(self.free_cpu[host], self.max_cpu))
