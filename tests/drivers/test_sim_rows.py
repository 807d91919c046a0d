"""The sim devices' file holds one row per object: an action writes the rows of what it changed, so its
cost does not grow with how many VMs a host or volumes a SAN holds; everything survives a reopen, in one
process and shared between processes; a file in the old layout (a host's VMs and a SAN's volumes inside
their parent's row) is read as it is and rewritten."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tropic.drivers.base import Step
from tropic.drivers.sim import SimDriver
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import project
from tropic.model.generate import build_datacenter

SAN = "/storage/us-east/san-1"
HOST = "/compute/us-east/host-01"
IMAGE = "img-ubuntu"


def spawn(sim: SimDriver, txn: int, name: str) -> None:
    """The device steps of a spawn: clone, export, import, create."""
    vol = f"vol-{name}"
    steps = [
        (SAN, "clone_image", {"image": IMAGE, "volume": vol}),
        (f"{SAN}/{vol}", "export_volume", {}),
        (HOST, "import_volume", {"volume": f"{SAN}/{vol}"}),
        (HOST, "create_vm", {"name": name, "vcpus": 1, "memory_mib": 256, "image": f"{SAN}/{IMAGE}",
                             "volume": f"{SAN}/{vol}"}),
    ]  # fmt: skip
    for i, (path, action, args) in enumerate(steps):
        sim.execute(Step(txn, i, path, action, args))


def row(path: Path, key: str) -> tuple[str, str] | None:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT kind, value FROM sim_objects WHERE key=?", (key,)).fetchone()
    return None if found is None else (found[0], found[1])


def test_an_action_writes_the_rows_it_changed_only(tmp_path: Path) -> None:
    path = tmp_path / "devices.db"
    sim = SimDriver(state_file=path)
    sim.load(project(build_datacenter()))
    for n in range(50):
        spawn(sim, n + 1, f"vm-{n}")
    san_row, host_row = row(path, SAN), row(path, HOST)
    assert san_row is not None and host_row is not None
    # The SAN's and the host's rows hold neither the volumes nor the VMs: their size does not follow them.
    assert set(json.loads(san_row[1])) == {"images"}
    assert set(json.loads(host_row[1])) == {"configs", "volumes"}
    assert row(path, f"{HOST}/vm-7") == ("vm", json.dumps(sim.hosts[HOST]["vms"]["vm-7"], sort_keys=True))
    assert row(path, f"{SAN}/vol-vm-7") is not None
    # A stop writes one VM's row; a delete removes it.
    sim.execute(Step(99, 0, f"{HOST}/vm-7", "stop", {}))
    assert json.loads(row(path, f"{HOST}/vm-7")[1])["state"] == "stopped"  # type: ignore[index]
    sim.execute(Step(100, 0, HOST, "delete_vm", {"name": "vm-8"}))
    sim.execute(Step(100, 1, SAN, "delete_volume", {"volume": "vol-vm-8"}))
    assert row(path, f"{HOST}/vm-8") is None and row(path, f"{SAN}/vol-vm-8") is None
    before = sim.inventory()
    sim.close()

    again = SimDriver(state_file=path)
    try:
        assert again.inventory() == before
        assert again.duplicates() == []
    finally:
        again.close()


def test_shared_processes_see_each_others_objects(tmp_path: Path) -> None:
    path = tmp_path / "devices.db"
    a, b = SharedSimDriver(path), SharedSimDriver(path)
    try:
        a.load(project(build_datacenter()))
        spawn(a, 1, "web-1")
        spawn(b, 2, "web-2")  # b reads the host and SAN (with a's VM and volume) before acting
        b.execute(Step(3, 0, HOST, "delete_vm", {"name": "web-1"}))
        a.execute(Step(4, 0, f"{HOST}/web-2", "stop", {}))
        for sim in (a, b):
            vms = sim.inventory()["hosts"][HOST]["vms"]
            assert set(vms) == {"web-2"} and vms["web-2"]["state"] == "stopped"
            assert {"vol-web-1", "vol-web-2"} <= set(sim.inventory()["storage"][SAN]["volumes"])
    finally:
        a.close()
        b.close()


def test_a_file_in_the_old_layout_is_read_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "devices.db"
    sim = SimDriver(state_file=path)
    sim.load(project(build_datacenter()))
    spawn(sim, 1, "web-1")
    expected = sim.inventory()
    sim.close()
    # The old layout: VMs inside their host's row, volumes inside their SAN's row, no rows of their own.
    with sqlite3.connect(path) as db:
        for key in (HOST, SAN):
            kind, value = db.execute("SELECT kind, value FROM sim_objects WHERE key=?", (key,)).fetchone()
            obj = json.loads(value)
            if kind == "host":
                obj["vms"] = expected["hosts"][HOST]["vms"]
            else:
                obj["volumes"] = expected["storage"][SAN]["volumes"]
            db.execute("UPDATE sim_objects SET value=? WHERE key=?", (json.dumps(obj), key))
        db.execute("DELETE FROM sim_objects WHERE kind IN ('vm', 'volume')")

    old = SimDriver(state_file=path)
    try:
        assert old.inventory() == expected
    finally:
        old.close()
    assert "vms" not in json.loads(row(path, HOST)[1])  # type: ignore[index]
    assert row(path, f"{HOST}/web-1") is not None and row(path, f"{SAN}/vol-web-1") is not None
    new = SimDriver(state_file=path)
    try:
        assert new.inventory() == expected
    finally:
        new.close()
