"""A :class:`~tropic.autopilot.base.Snapshot` as index-aligned arrays, for the bench's heuristics.

Hosts carry their CPU speed and power model as labels (``mips_per_cpu``, ``power_model``: ``g4``/``g5``),
VMs their rating (``mips``); a snapshot without them is read with 1,000 MIPS per CPU and the G5 table. A
VM's utilisation is its predicted demand over its vCPUs; a VM with unknown demand, or on a stale host,
is pinned (never moved), as the contract asks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tropic.autopilot.base import Move, Snapshot
from tropic.autopilot.bench.fleet import G5, HOST_TYPES, FloatArray, IntArray

DEFAULT_MIPS_PER_CPU = 1000.0


@dataclass
class Arrays:
    host_paths: list[str]
    vm_paths: list[str]
    host_mips: FloatArray
    host_pe_mips: FloatArray
    host_ram: FloatArray
    power_table: FloatArray
    vm_mips: FloatArray
    vm_ram: FloatArray  # memory held on the host (what fits check)
    vm_migration_ram: FloatArray  # memory copied by a live migration (label ram_mb; default memory_mib)
    vm_util: FloatArray
    host_of: IntArray  # current host index of each VM
    pinned: np.ndarray  # bool per VM: never moved
    host_blocked: np.ndarray  # bool per host: cordoned, powered off by an operator, or stale: no new VM

    @property
    def demand_mips(self) -> FloatArray:
        return self.vm_util * self.vm_mips

    def moves(self, final: IntArray, why: str) -> tuple[Move, ...]:
        """The VMs whose final host differs from their current one (a VM moved twice in a pass, or moved
        back, costs at most one migration: Watcher's "optimize solution" step)."""
        changed = np.nonzero(final != self.host_of)[0]
        return tuple(Move(self.vm_paths[v], self.host_paths[int(final[v])], why) for v in changed)


def arrays_of(snapshot: Snapshot) -> Arrays:
    host_paths = list(snapshot.hosts)
    index = {p: i for i, p in enumerate(host_paths)}
    mips: list[float] = []
    pe: list[float] = []
    ram: list[float] = []
    table: list[tuple[float, ...]] = []
    blocked: list[bool] = []
    for p in host_paths:
        h = snapshot.hosts[p]
        per_cpu = float(h.labels.get("mips_per_cpu", DEFAULT_MIPS_PER_CPU))
        mips.append(per_cpu * h.cpus)
        pe.append(per_cpu)
        ram.append(float(h.memory_mib))
        table.append(HOST_TYPES.get(h.labels.get("power_model", ""), G5).power_w)
        blocked.append(h.cordoned or p in snapshot.stale)
    vm_paths = list(snapshot.vms)
    vm_mips = np.empty(len(vm_paths))
    vm_ram = np.empty(len(vm_paths))
    vm_mig = np.empty(len(vm_paths))
    util = np.zeros(len(vm_paths))
    host_of = np.empty(len(vm_paths), dtype=np.int64)
    pinned = np.zeros(len(vm_paths), dtype=bool)
    for i, p in enumerate(vm_paths):
        v = snapshot.vms[p]
        vm_mips[i] = float(v.labels.get("mips", DEFAULT_MIPS_PER_CPU * v.vcpus))
        vm_ram[i] = float(v.memory_mib)
        vm_mig[i] = float(v.labels.get("ram_mb", v.memory_mib))
        host_of[i] = index[v.host]
        if v.demand is None or p in snapshot.stale or v.host in snapshot.stale:
            pinned[i] = True
        else:
            util[i] = min(max(v.demand / max(v.vcpus, 1), 0.0), 1.0)
    return Arrays(
        host_paths,
        vm_paths,
        np.array(mips),
        np.array(pe),
        np.array(ram),
        np.array(table).reshape(len(host_paths), 11),
        vm_mips,
        vm_ram,
        vm_mig,
        util,
        host_of,
        pinned,
        np.array(blocked, dtype=bool),
    )
