"""The follow-the-sun actions on every driver: the cross-region live migration (``live_migrate``) moves
a VM onto the volume prepared at the destination, idempotently, and mirrors the reference sim; the
overlay's address actions change no inventory (the overlay's table is the model's, kept by the sim too,
where they are idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.kit import H1, H2, IMG, SAN, Probe, World, fail_step, make_driver
from tropic.drivers import SimDriver
from tropic.drivers.base import Step
from tropic.model import project
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.txn import Controller, State

VOL, VOL_B = f"{SAN}/vol-a", f"{SAN}/vol-b"
VM_ARGS: dict[str, Any] = {
    "name": "vm-a",
    "vcpus": 2,
    "memory_mib": 2048,
    "image": f"{SAN}/{IMG}",
    "volume": VOL,
}
GROUP = "/overlay/zk"
ADDRESS = {"name": "ip-100-64-0-1", "ip": "100.64.0.1", "member": "u1", "vm": f"{H1}/vm-a"}
GEO_ACTIONS = {"live_migrate", "add_address", "remove_address", "switch_address"}


def prepared(w: World) -> None:
    """vm-a running on H1 on vol-a; vol-b imported on H2 with vm-a's configuration there."""
    for vol in ("vol-a", "vol-b"):
        w.both(SAN, "clone_image", {"image": IMG, "volume": vol})
        w.both(f"{SAN}/{vol}", "export_volume")
    w.both(H1, "import_volume", {"volume": VOL})
    w.both(H2, "import_volume", {"volume": VOL_B})
    w.both(H1, "create_vm", {**VM_ARGS, "state": "running"})
    w.both(H2, "create_config", {"name": "vm-a"})


def test_live_migrate_and_its_undo_are_idempotent_and_mirror_the_sim(world: World) -> None:
    prepared(world)
    before = world.driver.inventory()
    there = {"name": "vm-a", "dest": H2, "volume": VOL_B, "image": f"{SAN}/{IMG}", "transfer_s": 3.0}
    back = {"name": "vm-a", "dest": H1, "volume": VOL, "image": f"{SAN}/{IMG}", "transfer_s": 3.0}
    world.both(H1, "live_migrate", there)
    after = world.driver.inventory()
    moved = after["hosts"][H2]["vms"]["vm-a"]
    assert moved["volume"] == VOL_B and moved["state"] == "running"
    assert after["hosts"][H1]["vms"] == {}
    assert after["hosts"][H1]["configs"] == ["vm-a"]  # the source's configuration is released apart
    world.both(H1, "live_migrate", there)  # a retried step changes nothing more
    assert world.driver.inventory() == after
    world.both(H2, "live_migrate", back)
    assert world.driver.inventory() == before
    world.both(H2, "live_migrate", back)
    assert world.driver.inventory() == before


def test_address_actions_change_no_inventory(world: World) -> None:
    prepared(world)
    before = world.driver.inventory()
    for step in (
        (GROUP, "add_address", ADDRESS),
        (GROUP, "add_address", ADDRESS),
        (f"{GROUP}/{ADDRESS['name']}", "switch_address", {"vm": f"{H2}/vm-a"}),
        (f"{GROUP}/{ADDRESS['name']}", "switch_address", {"vm": f"{H2}/vm-a"}),
    ):
        world.both(*step)
    assert world.driver.inventory() == before
    for drv in (world.driver, world.reference):
        if isinstance(drv, SimDriver):
            assert drv.overlay == {f"{GROUP}/{ADDRESS['name']}": f"{H2}/vm-a"}
    world.both(GROUP, "remove_address", {"name": ADDRESS["name"]})
    world.both(GROUP, "remove_address", {"name": ADDRESS["name"]})
    assert world.reference.overlay == {}
    assert world.driver.inventory() == before


def test_the_sims_overlay_is_kept_in_its_file(tmp_path: Path) -> None:
    path = tmp_path / "devices.db"
    sim = SimDriver(state_file=path)
    sim.execute(Step(1, 0, GROUP, "add_address", ADDRESS))
    sim.execute(Step(1, 1, f"{GROUP}/{ADDRESS['name']}", "switch_address", {"vm": f"{H2}/vm-a"}))
    sim.close()
    again = SimDriver(state_file=path)
    try:
        assert again.overlay == {f"{GROUP}/{ADDRESS['name']}": f"{H2}/vm-a"}
    finally:
        again.close()


@pytest.mark.parametrize("after", [False, True], ids=["before-effect", "after-effect"])
def test_migrate_member_through_the_controller(driver_kind: str, after: bool) -> None:
    """A member moves between two regions on every backend, keeping its address; a live migration that
    fails (before or after its device effect) on the way back leaves it where it was, nothing behind."""
    model = build_datacenter(DatacenterSpec(regions=("r1", "r2"), hosts_per_region=2))
    driver = make_driver(driver_kind)
    driver.load(project(model))  # type: ignore[attr-defined]
    try:
        with Controller(model, driver, workers=2) as c:

            def ok(proc: str, args: dict[str, Any]) -> None:
                t = c.wait(c.submit(proc, args), 60)
                assert t.state is State.COMMITTED, (proc, t.error, t.violation)

            def consistent() -> None:
                report = c.check()
                assert report["consistent"], report["differences"]
                assert report["orphans"] == []

            image = "/storage/r1/san-1/img-ubuntu"
            ok("create_replicated_service", {"name": "zk", "image": image, "vcpus": 1, "memory_mib": 1024})
            ok("spawn_member", {"service": "zk", "name": "m1", "host": "/compute/r1/host-01"})
            ok("migrate_member", {"service": "zk", "member": "m1", "region": "r2"})
            probe = Probe(driver)
            assert (
                probe.running("/compute/r2/host-01") == {"m1"}
                and probe.domains("/compute/r1/host-01") == set()
            )
            consistent()
            fired = fail_step(driver, "live_migrate", name="m1", after=after)
            t = c.wait(c.submit("migrate_member", {"service": "zk", "member": "m1", "region": "r1"}), 60)
            assert t.state is State.ABORTED and fired() == 1
            assert probe.running("/compute/r2/host-01") == {"m1"}
            assert probe.domains("/compute/r1/host-01") == set()
            consistent()
    finally:
        driver.close()
