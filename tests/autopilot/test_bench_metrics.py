"""The bench's metrics on cases small enough to compute by hand: the SPECpower tables, energy per interval,
SLATAH, PDM."""

from __future__ import annotations

import numpy as np
import pytest

from tropic.autopilot.bench.fleet import G4, G5, Fleet, migration_time_s, power
from tropic.autopilot.bench.metrics import Accounting, npa_energy_kwh


def fleet(types: list[str], vm_mips: list[float], vm_ram: list[float] | None = None) -> Fleet:
    by = {"g4": G4, "g5": G5}
    return Fleet(
        host_names=tuple(f"h{i}" for i in range(len(types))),
        host_types=tuple(by[t] for t in types),
        vm_names=tuple(f"v{i}" for i in range(len(vm_mips))),
        vm_mips=np.array(vm_mips),
        vm_ram=np.array(vm_ram or [870.0] * len(vm_mips)),
    )


def test_power_interpolates_the_specpower_tables() -> None:
    table = np.array([G4.power_w, G5.power_w, G4.power_w, G5.power_w])
    got = power(table, np.array([0.55, 1.0, 0.0, 0.33]))
    # G4 at 55%: halfway between 102 (50%) and 106 (60%); G5 at 100%: 135; G4 idle: 86;
    # G5 at 33%: 105 (30%) + 0.3 x (110 - 105).
    assert got == pytest.approx([104.0, 135.0, 86.0, 106.5])


def test_energy_of_a_host_at_known_utilisation_over_one_interval() -> None:
    f = fleet(["g4"], [1860.0])
    acc = Accounting(f)
    # 1860 MIPS at 100% on a 3,720-MIPS G4: 50% (102 W) at the start; at 80% = 1488 MIPS: 40% (99.5 W).
    acc.interval(np.array([0]), np.array([1.0]), np.array([0.8]), [])
    assert acc.energy_j == pytest.approx((102.0 + 99.5) / 2 * 300)
    assert acc.active_host_hours == pytest.approx(300 / 3600)
    assert acc.slatah == 0.0


def test_a_host_idle_at_the_start_of_an_interval_is_off() -> None:
    f = fleet(["g5", "g5"], [1000.0, 1000.0])
    acc = Accounting(f)
    acc.interval(np.array([0, 1]), np.array([0.0, 0.5]), np.array([0.9, 0.5]), [])
    # Host 0 was at 0%: switched off, 0 J, not active. Host 1: 500/5320 MIPS at both ends.
    expected = float(power(np.array([G5.power_w]), np.array([500 / 5320]))[0]) * 300
    assert acc.energy_j == pytest.approx(expected)
    assert acc.active_hosts == [1]


def test_slatah_is_the_share_of_active_time_a_host_was_asked_more_than_it_has() -> None:
    # Host 0 (G4, 3720 MIPS) gets two 2000-MIPS VMs: at 100% they ask 4000 MIPS (and more than a core
    # each): violated. Host 1 (G5) holds one VM at 10%: fine.
    f = fleet(["g4", "g5"], [2000.0, 2000.0, 1000.0])
    acc = Accounting(f)
    placement = np.array([0, 0, 1])
    acc.interval(placement, np.array([1.0, 1.0, 0.1]), np.array([0.5, 0.5, 0.1]), [])
    acc.interval(placement, np.array([0.5, 0.5, 0.1]), np.array([0.5, 0.5, 0.1]), [])
    assert acc.slatah == pytest.approx(1 / 4)  # 1 violated host-interval out of 4 active ones
    assert acc.slatah_end == 0.0  # at the intervals' ends host 0 is asked 2000 of its 3720 MIPS


def test_a_vm_faster_than_a_core_is_a_violation_even_on_an_idle_host() -> None:
    f = fleet(["g4"], [2500.0])
    acc = Accounting(f)
    acc.interval(np.array([0]), np.array([0.9]), np.array([0.9]), [])  # 2250 MIPS > 1860 per core
    assert acc.slatah == 1.0


def test_pdm_is_ten_percent_of_the_migrating_vms_mips_for_the_migration_time() -> None:
    f = fleet(["g5", "g5"], [1000.0, 500.0], [1740.0, 613.0])
    acc = Accounting(f)
    acc.interval(np.array([1, 1]), np.array([0.5, 0.2]), np.array([0.5, 0.2]), [0])
    assert migration_time_s(1740.0) == pytest.approx(27.84)
    degraded = 0.1 * 500 * 27.84
    requested = (500 + 100) * 300
    assert acc.pdm == pytest.approx(degraded / requested)
    assert acc.migrations == 1
    assert acc.slav == pytest.approx(acc.slatah * acc.pdm)


def test_npa_is_every_host_at_full_power() -> None:
    f = fleet(["g4", "g5"], [500.0])
    assert npa_energy_kwh(f, 287) == pytest.approx((117 + 135) * 287 * 300 / 3.6e6)
