"""Generated fleets for the consolidation policy's tests and benchmark: hosts in racks (failure domains),
VMs spread at random over them (so there is something to consolidate, unevenly) with sizes of common
flavours and a predicted demand drawn from a skewed utilisation (most VMs lightly used, as in the
PlanetLab traces)."""

from __future__ import annotations

import random

from tropic.autopilot.base import HostState, Snapshot, VMState

FLAVOURS = ((1, 2048), (2, 4096), (2, 8192), (4, 8192), (4, 16384), (8, 16384), (8, 32768))


def generate_fleet(
    hosts: int,
    vms: int,
    *,
    seed: int = 0,
    cpus: int = 48,
    memory_mib: int = 262144,
    rack_size: int = 16,
    region: str = "r1",
    anti_affinity_groups: int = 0,
) -> Snapshot:
    """``vms`` VMs on ``hosts`` identical hosts, each on a random host with room; ``anti_affinity_groups``
    groups of 3 VMs labelled ``anti_affinity`` (placed in distinct racks, as the label requires)."""
    rng = random.Random(seed)
    host_states: dict[str, HostState] = {}
    paths = [f"/compute/{region}/h{i:05d}" for i in range(hosts)]
    vm_states: dict[str, VMState] = {}
    on: dict[str, list[str]] = {p: [] for p in paths}
    used = dict.fromkeys(paths, 0)
    for j in range(vms):
        vcpus, memory = rng.choice(FLAVOURS)
        host = rng.choice(paths)
        for _ in range(20):  # a host with room in memory (the fleet's binding resource)
            if used[host] + memory <= memory_mib * 0.9:
                break
            host = rng.choice(paths)
        else:
            host = min(paths, key=used.__getitem__)
        used[host] += memory
        path = f"{host}/vm{j:06d}"
        labels: dict[str, str] = {}
        group = j // 3
        if group < anti_affinity_groups and hosts >= 3 * rack_size:
            # three consecutive VMs on hosts j, j+1, j+2 lie in one rack; spread them a rack apart instead
            used[host] -= memory
            host = paths[(j % 3) * rack_size + (group % rack_size)]
            used[host] += memory
            path = f"{host}/vm{j:06d}"
            labels["anti_affinity"] = f"app-{group}"
        demand = round(vcpus * min(1.0, rng.betavariate(1.1, 5.0)), 3)
        vm_states[path] = VMState(
            path=path, host=host, vcpus=vcpus, memory_mib=memory, uid=f"u{j}", demand=demand, labels=labels
        )
        on[host].append(path)
    for i, path in enumerate(paths):
        host_states[path] = HostState(
            path=path,
            region=region,
            cpus=cpus,
            memory_mib=memory_mib,
            failure_domain=f"rack{i // rack_size:03d}",
            vms=tuple(on[path]),
        )
    return Snapshot(at=0.0, hosts=host_states, vms=vm_states)
