"""The sim's per-step application counts stay bounded over many transactions (entries counted, not
memory), while a redo of a recent step is still recognised and a step applied twice stays reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tropic.drivers.base import Step
from tropic.drivers.sim import SimDriver
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import project
from tropic.model.generate import build_datacenter

SAN = "/storage/us-east/san-1"
HOST = "/compute/us-east/host-01"
VM = f"{HOST}/vm-0"
KEEP, EVERY = 20, 10


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM sim_applied").fetchone()[0])


def _spawn(sim: SimDriver) -> None:
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (SAN, "clone_image", {"image": "img-ubuntu", "volume": "vol-0"}),
        (f"{SAN}/vol-0", "export_volume", {}),
        (HOST, "import_volume", {"volume": f"{SAN}/vol-0"}),
        (HOST, "create_vm", {"name": "vm-0", "vcpus": 1, "memory_mib": 256, "image": f"{SAN}/img-ubuntu",
                             "volume": f"{SAN}/vol-0"}),
    ]  # fmt: skip
    for i, (path, action, args) in enumerate(steps):
        sim.execute(Step(1, i, path, action, args))


@pytest.mark.parametrize("shared", [False, True])
def test_the_counts_stay_bounded_and_a_redo_is_still_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    monkeypatch.setattr("tropic.drivers.sim.RELEASE_EVERY", EVERY)
    path = tmp_path / "devices.db"
    sim = SharedSimDriver(path) if shared else SimDriver(state_file=path)
    sim.keep_txns = KEEP
    sim.load(project(build_datacenter()))
    _spawn(sim)
    # 600 transactions, each stopping or starting the VM: one effective step each.
    for txn in range(2, 602):
        sim.execute(Step(txn, 0, VM, "stop" if txn % 2 == 0 else "start", {}))
        if txn == 301:
            # Transaction 300's step redone (as after a crash), the VM started meanwhile: applied again.
            sim.execute(Step(300, 0, VM, "stop", {}))
        if txn % 50 == 0:
            assert _rows(path) <= KEEP + EVERY + 2  # (the duplicate is kept besides)
            assert len(sim.applied) <= KEEP + EVERY + 2
    assert (601, 0, False) in sim.applied and (1, 0, False) not in sim.applied  # newest kept, oldest gone
    # Redone steps of recent transactions: an idempotent redo (the VM is started already) counts nothing,
    # one that applies its effect again is recognised as the second application.
    sim.execute(Step(601, 0, VM, "start", {}))
    sim.execute(Step(600, 0, VM, "stop", {}))
    assert sim.duplicates() == [(300, 0, False), (600, 0, False)]  # the old duplicate is kept too
    sim.close()
    again = SimDriver(state_file=path) if not shared else SharedSimDriver(path)
    try:
        assert again.duplicates() == [(300, 0, False), (600, 0, False)]
        assert len(again.applied) <= KEEP + EVERY + 3
    finally:
        again.close()
