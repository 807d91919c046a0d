"""The bench's datacenter in tropic's model, and CloudSim's initial placements.

Every host and VM is an ordinary model resource (one region, ``bench``): a host has 2 CPUs and 4,096 MiB,
labelled with its CPU speed and power model; a VM has 1 vCPU, its RAM and its MIPS rating as a label. The
controller checks every migration against the model's constraints (memory, vCPUs) like any other.
"""

from __future__ import annotations

import numpy as np

from tropic.autopilot.bench.fleet import Fleet, IntArray
from tropic.errors import InvalidArguments
from tropic.model import STANDARD, VM, ComputeRoot, Host, Model, Region

REGION = "bench"


def host_path(fleet: Fleet, h: int) -> str:
    return f"/compute/{REGION}/{fleet.host_names[h]}"


def vm_name(v: int) -> str:
    return f"vm-{v:05d}"


def build_model(fleet: Fleet, placement: IntArray) -> Model:
    """The model: the fleet's hosts, each VM on its host with its configuration there."""
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add(f"/compute/{REGION}", Region, location=REGION)
    names: list[list[str]] = [[] for _ in range(fleet.hosts)]
    for v, h in enumerate(placement):
        names[int(h)].append(vm_name(v))
    for h, t in enumerate(fleet.host_types):
        m.add(
            host_path(fleet, h),
            Host,
            cpus=t.cores,
            memory_mib=t.ram_mb,
            cpu_overcommit=float(max(fleet.vms, 1)),  # CPU is governed by MIPS: no vCPU slot limit
            labels={"mips_per_cpu": f"{t.pe_mips:g}", "power_model": t.name},
            configs=names[h],
        )
    for v, h in enumerate(placement):
        m.add(
            f"{host_path(fleet, int(h))}/{vm_name(v)}",
            VM,
            vcpus=1,
            memory_mib=int(fleet.vm_memory_held[v]),
            uid=vm_name(v),
            labels={"mips": f"{fleet.vm_mips[v]:g}", "ram_mb": f"{fleet.vm_ram[v]:g}"},
        )
    return m


def _unplaceable(fleet: Fleet, v: int) -> InvalidArguments:
    return InvalidArguments(
        f"{fleet.hosts} hosts cannot hold the trace's {fleet.vms} VMs (VM {fleet.vm_names[v]} fits nowhere): "
        "give more --hosts or fewer --vms"
    )


def first_fit_placement(fleet: Fleet) -> IntArray:
    """CloudSim's initial placement for the migration policies (``PowerVmAllocationPolicyAbstract``: first
    fit): VMs in trace order, each requesting its full MIPS, on the first host where it fits on a core, in
    the host's free MIPS and in its memory."""
    free_mips = fleet.host_mips.copy()
    free_ram = fleet.host_ram.copy()
    pe = fleet.host_pe_mips
    out = np.empty(fleet.vms, dtype=np.int64)
    for v in range(fleet.vms):
        need = fleet.vm_mips[v]
        ok = (pe >= need) & (free_mips >= need) & (free_ram >= fleet.vm_ram[v])
        if not ok.any():
            raise _unplaceable(fleet, v)
        h = int(np.argmax(ok))
        out[v] = h
        free_mips[h] -= need
        free_ram[h] -= fleet.vm_ram[v]
    return out


def spread_placement(fleet: Fleet) -> IntArray:
    """CloudSim's ``VmAllocationPolicySimple`` (the NPA and DVFS runs): each VM on the host with the most
    free cores where its full MIPS fit."""
    free_pes = np.array([float(t.cores) for t in fleet.host_types])
    free_mips = fleet.host_mips.copy()
    free_ram = fleet.host_ram.copy()
    pe = fleet.host_pe_mips
    out = np.empty(fleet.vms, dtype=np.int64)
    for v in range(fleet.vms):
        need = fleet.vm_mips[v]
        ok = (free_pes >= 1) & (pe >= need) & (free_mips >= need) & (free_ram >= fleet.vm_ram[v])
        if not ok.any():
            raise _unplaceable(fleet, v)
        h = int(np.argmax(np.where(ok, free_pes, -1.0)))
        out[v] = h
        free_pes[h] -= 1
        free_mips[h] -= need
        free_ram[h] -= fleet.vm_ram[v]
    return out
