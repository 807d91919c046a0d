"""The fleet actions on the sim: a region, host, storage host, image and router brought under management
by transactions and released again; removal refused while something remains; every step idempotent."""

from __future__ import annotations

from tropic.drivers.base import FLEET_ACTIONS, Step
from tropic.drivers.sim import SimDriver
from tropic.model import project
from tropic.model.generate import build_datacenter
from tropic.model.schema import ComputeRoot, NetworkRoot, Region, StorageHost, StorageRoot
from tropic.procedures.base import Registry
from tropic.procedures.standard import STANDARD_PROCEDURES
from tropic.txn import Controller, State


def grow(view, *, name: str) -> None:  # type: ignore[no-untyped-def]
    view.get("/compute", ComputeRoot).add_region(name=name, location="eu-west-1", timezone="Europe/Dublin")
    view.get(f"/compute/{name}", Region).add_host(name="h1", cpus=8, memory_mib=16384, labels={"t": "web"})
    view.get("/storage", StorageRoot).add_region(name=name)
    view.get(f"/storage/{name}", Region).add_storage_host(name="san-1")
    view.get(f"/storage/{name}/san-1", StorageHost).add_image(name="img-a")
    view.get("/network", NetworkRoot).add_network(name=f"net-{name}")


def shrink(view, *, name: str) -> None:  # type: ignore[no-untyped-def]
    view.get(f"/compute/{name}", Region).remove_host(name="h1")
    view.get("/compute", ComputeRoot).remove_region(name=name)


def controller() -> tuple[Controller, SimDriver]:
    model = build_datacenter()
    driver = SimDriver()
    driver.load(project(model))
    return Controller(model, driver, registry=Registry.of(STANDARD_PROCEDURES, [grow, shrink])), driver


def test_a_region_with_a_host_comes_and_goes_by_transactions() -> None:
    c, d = controller()
    with c:
        assert c.wait(c.submit("grow", {"name": "eu"})).state is State.COMMITTED
        assert "/compute/eu/h1" in d.hosts and "img-a" in d.sans["/storage/eu/san-1"]["images"]
        host = c.model.nodes["/compute/eu/h1"].attrs
        assert (host["cpus"], host["labels"], host["cordoned"]) == (8, {"t": "web"}, False)
        spawn = {
            "host": "/compute/eu/h1",
            "name": "w1",
            "image": "/storage/eu/san-1/img-a",
            "vcpus": 2,
            "memory_mib": 1024,
        }
        assert c.wait(c.submit("spawn_vm", spawn)).state is State.COMMITTED
        refused = c.wait(c.submit("shrink", {"name": "eu"}))
        assert refused.state is State.ABORTED and "still holds" in refused.error["message"]
        assert "/compute/eu/h1" in c.model.nodes and "/compute/eu/h1" in d.hosts
        assert c.wait(c.submit("destroy_vm", {"vm": "/compute/eu/h1/w1"})).state is State.COMMITTED
        assert c.wait(c.submit("shrink", {"name": "eu"})).state is State.COMMITTED
        assert "/compute/eu" not in c.model.nodes and "/compute/eu/h1" not in d.hosts
        assert c.check()["consistent"]


def test_fleet_steps_are_idempotent_and_undone() -> None:
    d = SimDriver()
    d.load(project(build_datacenter()))
    before = d.inventory()
    steps = [
        ("/compute/us-east", "add_host", {"name": "extra", "cpus": 4, "memory_mib": 4096}),
        ("/storage/us-east", "add_storage_host", {"name": "san-9"}),
        ("/storage/us-east/san-9", "add_image", {"name": "img-x"}),
        ("/network/us-east", "add_router", {"name": "router-9", "next_hop": ""}),
    ]
    undos = {
        "add_host": "remove_host",
        "add_storage_host": "remove_storage_host",
        "add_image": "remove_image",
    }
    undos["add_router"] = "remove_router"
    for i, (path, action, args) in enumerate(steps):
        for _ in range(2):  # a retried step changes nothing more
            d.execute(Step(1, i, path, action, args))
    after = d.inventory()
    assert after != before and "/compute/us-east/extra" in after["hosts"]
    assert d.probe(Step(1, 0, *steps[0])) is True
    for i, (path, action, args) in reversed(list(enumerate(steps))):
        for _ in range(2):
            d.execute(Step(1, i, path, undos[action], {"name": args["name"]}, undo=True))
    assert d.inventory() == before
    assert {"add_host", "remove_host", "configure"} <= FLEET_ACTIONS
