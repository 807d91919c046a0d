"""The datacenter a replay runs on: one region of identical hosts, sized from the trace's peak demand.

Sizing walks the trace's events once and takes the peak of concurrently running vCPUs and memory; the
datacenter gets enough hosts for that peak at a target fill (placement never packs perfectly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tropic.drivers.sim import SimDriver
from tropic.errors import InvalidArguments
from tropic.model import STANDARD, ComputeRoot, Host, Image, Model, Region, StorageHost, StorageRoot, project
from tropic.replay.placement import HostCapacity
from tropic.replay.schedule import TimedEvent
from tropic.trace import EventKind, Flavor

REGION = "az"
IMAGE = f"/storage/{REGION}/san-1/img"
DEFAULT_FILL = 0.8
"""Fraction of the datacenter's capacity the trace's peak demand should use when sizing it."""


@dataclass(frozen=True, slots=True)
class HostProfile:
    """The one host type of a replay datacenter. The default, 16 CPUs and 128 GiB without CPU overcommit,
    holds the trace's largest flavor (16 vCPUs, 112 GiB) and about 7 of its average VMs: close to TROPIC's
    evaluation density of 8 VMs per host. Bigger hosts hold more VMs each, and every transaction on a host
    is serialised by its host lock and checks constraints over all its VMs."""

    cpus: int = 16
    memory_mib: int = 128 * 1024
    cpu_overcommit: float = 1.0

    def __post_init__(self) -> None:
        if self.cpus < 1 or self.memory_mib < 1 or self.cpu_overcommit <= 0:
            raise InvalidArguments(f"host CPUs, memory and overcommit must be positive, got {self}")

    @property
    def capacity(self) -> HostCapacity:
        return HostCapacity(math.floor(self.cpus * self.cpu_overcommit), self.memory_mib)

    def check_fits(self, flavors: Iterable[Flavor]) -> None:
        """Refuse a profile on which some flavor of the trace could never run."""
        cap = self.capacity
        for f in flavors:
            if f.vcpus > cap.vcpu_slots or f.memory_mib > cap.memory_mib:
                raise InvalidArguments(
                    f"flavor {f.letter} ({f.vcpus} vCPUs, {f.memory_mib} MiB) does not fit on a host of "
                    f"{self.cpus} CPUs x {self.cpu_overcommit:g} and {self.memory_mib} MiB"
                )


@dataclass(frozen=True, slots=True)
class Demand:
    """What a replay asks of the datacenter: event counts and the peak of concurrent use."""

    arrivals: int
    departures: int
    peak_vms: int
    peak_vcpus: int
    peak_memory_mib: int

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


def peak_demand(events: Iterable[TimedEvent]) -> Demand:
    arrivals = departures = vms = vcpus = memory = 0
    peak_vms = peak_vcpus = peak_memory = 0
    for ev in events:
        vm = ev.vm
        if ev.kind is EventKind.ARRIVAL:
            arrivals += 1
            vms += 1
            vcpus += vm.vcpus
            memory += vm.memory_mib
            peak_vms = max(peak_vms, vms)
            peak_vcpus = max(peak_vcpus, vcpus)
            peak_memory = max(peak_memory, memory)
        else:
            departures += 1
            vms -= 1
            vcpus -= vm.vcpus
            memory -= vm.memory_mib
    return Demand(arrivals, departures, peak_vms, peak_vcpus, peak_memory)


def hosts_for(demand: Demand, profile: HostProfile, fill: float = DEFAULT_FILL) -> int:
    """Hosts needed so that the peak demand uses ``fill`` of the vCPUs and of the memory."""
    if not 0 < fill <= 1:
        raise InvalidArguments(f"fill must be in (0, 1], got {fill}")
    cap = profile.capacity
    by_cpu = demand.peak_vcpus / (cap.vcpu_slots * fill)
    by_mem = demand.peak_memory_mib / (cap.memory_mib * fill)
    return max(1, math.ceil(max(by_cpu, by_mem)))


def host_path(index: int) -> str:
    return f"/compute/{REGION}/host-{index:06d}"


def build_replay_datacenter(hosts: int, profile: HostProfile) -> tuple[Model, list[str]]:
    """A model with ``hosts`` empty hosts in one region and one SAN holding the image every VM boots from;
    returns it with the host paths in placement order."""
    if hosts < 1:
        raise InvalidArguments(f"a replay needs at least one host, got {hosts}")
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    m.add(f"/compute/{REGION}", Region, location=REGION)
    m.add(f"/storage/{REGION}", Region, location=REGION)
    m.add(f"/storage/{REGION}/san-1", StorageHost)
    m.add(IMAGE, Image)
    paths = [host_path(i) for i in range(hosts)]
    for p in paths:
        m.add(
            p, Host, cpus=profile.cpus, memory_mib=profile.memory_mib, cpu_overcommit=profile.cpu_overcommit
        )
    return m, paths


def sim_devices(model: Model) -> SimDriver:
    """Zero-latency simulated devices holding exactly what ``model`` implies (kept in memory: the store,
    not the devices, is what a replay exercises)."""
    sim = SimDriver()
    sim.load(project(model))
    return sim
