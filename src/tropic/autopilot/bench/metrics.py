"""The paper's metrics (Beloglazov & Buyya, CCPE 2012), as CloudSim's ``PowerDatacenter`` and
``Helper.printResults`` compute them, over 5-minute intervals:

* **energy**: per host and interval, the mean of the power at the interval's start and end utilisation
  (SPECpower table, linear interpolation); 0 when the host is idle at the start (CloudSim: a host at 0%
  is switched off);
* **SLATAH**: the share of active hosts' time during which they were asked for more MIPS than they could
  give (the host at 100%, or a VM's demand above one core of the host);
* **PDM**: the MIPS lost by migrating VMs (10% of the VM's demand for the migration's duration,
  ``RAM / (bandwidth / 2)``) over the MIPS requested by all VMs;
* **SLAV** = SLATAH x PDM.

Utilisation is the MIPS a host delivers over its MIPS: each VM gets at most one core, the host at most its
total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tropic.autopilot.bench.fleet import (
    INTERVAL_S,
    MIGRATION_DEGRADATION,
    Fleet,
    FloatArray,
    IntArray,
    migration_time_s,
    power,
)


def host_load(fleet: Fleet, placement: IntArray, util: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(requested MIPS, delivered MIPS) per host for VM utilisations ``util``."""
    requested_vm = util * fleet.vm_mips
    delivered_vm = np.minimum(requested_vm, fleet.host_pe_mips[placement])
    n = fleet.hosts
    requested: FloatArray = np.bincount(placement, weights=requested_vm, minlength=n).astype(np.float64)
    delivered: FloatArray = np.minimum(
        np.bincount(placement, weights=delivered_vm, minlength=n), fleet.host_mips
    )
    return requested, delivered


@dataclass
class Accounting:
    fleet: Fleet
    energy_j: float = 0.0
    active_s: float = 0.0
    violation_s: float = 0.0
    violation_end_s: float = 0.0
    requested_mips_s: float = 0.0
    degraded_mips_s: float = 0.0
    migrations: int = 0
    active_hosts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._table = self.fleet.power_table
        self._mips = self.fleet.host_mips

    def interval(self, placement: IntArray, start: FloatArray, end: FloatArray, migrated: list[int]) -> None:
        """Account one interval: VM utilisations ``start`` and ``end`` on ``placement`` (the placement after
        this step's migrations), ``migrated``: the VMs that moved at its start."""
        req0, got0 = host_load(self.fleet, placement, start)
        req1, got1 = host_load(self.fleet, placement, end)
        u0 = got0 / self._mips
        u1 = got1 / self._mips
        active = u0 > 0
        watts = (power(self._table, u0) + power(self._table, u1)) / 2.0
        self.energy_j += float(watts[active].sum()) * INTERVAL_S
        self.active_s += float(active.sum()) * INTERVAL_S
        self.violation_s += float((active & (got0 + 1e-9 < req0)).sum()) * INTERVAL_S
        self.violation_end_s += float((active & (got1 + 1e-9 < req1)).sum()) * INTERVAL_S
        self.active_hosts.append(int(active.sum()))
        self.requested_mips_s += float((start * self.fleet.vm_mips).sum()) * INTERVAL_S
        if migrated:
            v = np.array(migrated, dtype=np.int64)
            t = migration_time_s(self.fleet.vm_ram[v])
            self.degraded_mips_s += float(
                (MIGRATION_DEGRADATION * start[v] * self.fleet.vm_mips[v] * t).sum()
            )
            self.migrations += len(migrated)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / 3.6e6

    @property
    def slatah(self) -> float:
        return self.violation_s / self.active_s if self.active_s else 0.0

    @property
    def slatah_end(self) -> float:
        """SLATAH judged by each interval's *end* utilisation on the placement chosen at its start: the
        overload the next samples bring before the next pass (not in the paper; see docs/autopilot.md)."""
        return self.violation_end_s / self.active_s if self.active_s else 0.0

    @property
    def pdm(self) -> float:
        return self.degraded_mips_s / self.requested_mips_s if self.requested_mips_s else 0.0

    @property
    def slav(self) -> float:
        return self.slatah * self.pdm

    @property
    def active_host_hours(self) -> float:
        return self.active_s / 3600.0


def npa_energy_kwh(fleet: Fleet, intervals: int) -> float:
    """No power management: every host at full power for the whole run."""
    return float(fleet.power_table[:, -1].sum()) * intervals * INTERVAL_S / 3.6e6
