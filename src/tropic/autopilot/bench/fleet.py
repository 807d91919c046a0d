"""The datacenter of CloudSim's ``power/planetlab`` experiments (Beloglazov & Buyya, CCPE 2012) as arrays:
HP ProLiant ML110 G4 and G5 hosts with the SPECpower tables CloudSim uses, and the four VM types handed out
in blocks by trace order.

Units: CPU in MIPS (a host's total over its cores; ``pe_mips`` per core), memory in MB (CloudSim's RAM),
power in W. Migration time is CloudSim's ``RAM / (bandwidth / 2)`` with 1 Gbit/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tropic.errors import InvalidArguments

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

INTERVAL_S = 300.0
"""CloudSim's scheduling interval: one trace sample per 5 minutes."""
BANDWIDTH_MBIT_S = 1000.0
MIGRATION_DEGRADATION = 0.1
"""A migrating VM loses 10% of its requested MIPS for the migration's duration (the paper's PDM)."""


@dataclass(frozen=True, slots=True)
class HostType:
    name: str
    pe_mips: float
    cores: int
    ram_mb: int
    power_w: tuple[float, ...]  # SPECpower watts at 0%, 10%, ..., 100% utilisation

    @property
    def mips(self) -> float:
        return self.pe_mips * self.cores


# SPECpower ssj2008 results, as in CloudSim's PowerModelSpecPowerHpProLiantMl110G4Xeon3040 and
# PowerModelSpecPowerHpProLiantMl110G5Xeon3075.
G4 = HostType("g4", 1860.0, 2, 4096, (86.0, 89.4, 92.6, 96.0, 99.5, 102.0, 106.0, 108.0, 112.0, 114.0, 117.0))
G5 = HostType(
    "g5", 2660.0, 2, 4096, (93.7, 97.0, 101.0, 105.0, 110.0, 116.0, 121.0, 125.0, 129.0, 133.0, 135.0)
)
HOST_TYPES: dict[str, HostType] = {G4.name: G4, G5.name: G5}


@dataclass(frozen=True, slots=True)
class VMType:
    mips: float
    ram_mb: int


VM_TYPES = (VMType(2500.0, 870), VMType(2000.0, 1740), VMType(1000.0, 1740), VMType(500.0, 613))


def power(table: FloatArray, utilisation: FloatArray) -> FloatArray:
    """Watts at ``utilisation`` (0..1, clipped) by linear interpolation in each row's 11-point table, as
    CloudSim's ``PowerModelSpecPower.getPower``. ``table``: (n, 11); ``utilisation``: (n,)."""
    u = np.clip(utilisation, 0.0, 1.0) * 10.0
    lo = np.minimum(np.floor(u).astype(np.int64), 9)
    frac = u - lo
    rows = np.arange(table.shape[0])
    out: FloatArray = table[rows, lo] + (table[rows, lo + 1] - table[rows, lo]) * frac
    return out


def migration_time_s(ram_mb: FloatArray | float) -> FloatArray | float:
    """CloudSim's live-migration time: the VM's RAM over half the host's bandwidth."""
    return ram_mb * 8.0 / (BANDWIDTH_MBIT_S / 2.0)


@dataclass(frozen=True)
class Fleet:
    """Hosts and VMs as arrays, index-aligned with ``host_names`` and ``vm_names``."""

    host_names: tuple[str, ...]
    host_types: tuple[HostType, ...]
    vm_names: tuple[str, ...]
    vm_mips: FloatArray
    vm_ram: FloatArray
    memory_enforced: bool = False
    """False (CloudSim's behaviour): a VM holds its RAM only while it is created, then asks for none (its
    PlanetLab cloudlet's RAM model is ``UtilizationModelNull``), so memory never limits a migration. True:
    the 4 GB of each host bound the VMs it holds, in the policies and in the model's constraints alike."""

    def __post_init__(self) -> None:
        if not self.host_names:
            raise InvalidArguments("the bench needs at least one host")
        if len(self.vm_names) != len(self.vm_mips) or len(self.vm_names) != len(self.vm_ram):
            raise InvalidArguments("every VM needs a MIPS rating and a RAM size")

    @property
    def vm_memory_held(self) -> FloatArray:
        """The memory each VM holds on its host once running (the model's ``memory_mib``)."""
        return self.vm_ram if self.memory_enforced else np.zeros_like(self.vm_ram)

    @property
    def hosts(self) -> int:
        return len(self.host_names)

    @property
    def vms(self) -> int:
        return len(self.vm_names)

    @property
    def host_mips(self) -> FloatArray:
        return np.array([t.mips for t in self.host_types])

    @property
    def host_pe_mips(self) -> FloatArray:
        return np.array([t.pe_mips for t in self.host_types])

    @property
    def host_ram(self) -> FloatArray:
        return np.array([float(t.ram_mb) for t in self.host_types])

    @property
    def power_table(self) -> FloatArray:
        return np.array([t.power_w for t in self.host_types])


def cloudsim_fleet(
    hosts: int, vm_names: list[str] | tuple[str, ...], *, memory_enforced: bool = False
) -> Fleet:
    """CloudSim's planetlab datacenter: host ``i`` is a G4 when ``i`` is even, a G5 when odd; VM ``i`` of
    ``n`` gets type ``i // ceil(n / 4)`` (blocks in trace order)."""
    if hosts < 1:
        raise InvalidArguments(f"--hosts must be at least 1, got {hosts}")
    n = len(vm_names)
    if n < 1:
        raise InvalidArguments("the trace has no VM")
    block = math.ceil(n / len(VM_TYPES))
    types = [VM_TYPES[i // block] for i in range(n)]
    return Fleet(
        host_names=tuple(f"host-{i:04d}" for i in range(hosts)),
        host_types=tuple(G4 if i % 2 == 0 else G5 for i in range(hosts)),
        vm_names=tuple(vm_names),
        vm_mips=np.array([t.mips for t in types]),
        vm_ram=np.array([float(t.ram_mb) for t in types]),
        memory_enforced=memory_enforced,
    )
