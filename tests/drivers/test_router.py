"""The router driver: devices bound to their backend at every start, steps routed to it, mixed backends
(sim and libvirt) in one controller, cross-backend migration refused, restarts that fence nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING
from tropic.drivers import SimDriver, Step
from tropic.drivers.router import RouterDriver, device_of
from tropic.errors import DriverError
from tropic.model import Host, Model, Region, project
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.scenario.check import check_store
from tropic.service.embedded import open_embedded
from tropic.txn import State

needs_libvirt = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)

SIM_HOSTS = ("/compute/us-east/host-01", "/compute/us-east/host-02")
LV_HOSTS = ("/compute/eu-west/host-01", "/compute/eu-west/host-02")


def mixed() -> Model:
    """us-east on the sim, eu-west on libvirt test hypervisors (hosts, storage host and routers)."""
    m = build_datacenter(DatacenterSpec(regions=("us-east", "eu-west"), hosts_per_region=2))
    for path, node in m.nodes.items():
        if node.kind in ("host", "storage_host", "net", "router"):
            node.attrs["driver"] = "libvirt" if "eu-west" in path else "sim"
            if node.kind != "net" and "eu-west" in path:
                node.attrs["uri"] = "test:///default" if node.kind != "router" else ""
    return m


def spawn(host: str, name: str) -> dict[str, Any]:
    region = host.split("/")[2]
    return {
        "host": host,
        "name": name,
        "image": f"/storage/{region}/san-1/img-ubuntu",
        "vcpus": 2,
        "memory_mib": 2048,
    }


def test_device_of_each_kind_of_step() -> None:
    assert device_of(Step(1, 0, "/compute/r/h/vm", "start", {})) == "/compute/r/h"
    assert device_of(Step(1, 0, "/storage/r/s/vol", "export_volume", {})) == "/storage/r/s"
    assert device_of(Step(1, 0, "/compute/r", "add_host", {"name": "h9"})) == "/compute/r/h9"
    assert device_of(Step(1, 0, "/network/n", "remove_router", {"name": "r"})) == "/network/n/r"
    assert device_of(Step(1, 0, "/compute", "add_region", {"name": "x"})) is None


def test_a_sim_router_binds_and_routes_like_its_backend() -> None:
    model = build_datacenter()
    sim = SimDriver()
    router = RouterDriver(sim)
    router.bind(model, provision=False)
    router.load(project(model))
    assert router.inventory() == project(model) == sim.inventory()
    router.execute(Step(1, 0, "/network/us-east/router-1", "set_next_hop", {"next_hop": ""}))
    assert sim.calls >= 1
    with pytest.raises(DriverError, match="unknown driver kind 'xen'"):
        router.execute(Step(1, 0, "/compute/us-east", "add_host", {"name": "h9", "driver": "xen"}))


@needs_libvirt
def test_restart_on_libvirt_fences_nothing_and_keeps_the_vms(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    e = open_embedded(store, "libvirt+test:///default")
    try:
        c = e.controller.start()
        t = c.wait(c.submit("spawn_vm", spawn("/compute/us-east/host-01", "web-1")), 30)
        assert t.state is State.COMMITTED, t.error
    finally:
        e.close()
    e = open_embedded(store, "libvirt+test:///default")
    try:
        c = e.controller.start()
        report = c.check()
        assert report["consistent"], report["differences"]
        assert c.fenced == {}
        inv = e.router.reload("/compute/us-east/host-01")
        assert "web-1" in inv["hosts"]["/compute/us-east/host-01"]["vms"]
        t = c.wait(c.submit("spawn_vm", spawn("/compute/us-east/host-02", "web-2")), 30)
        assert t.state is State.COMMITTED, t.error
    finally:
        e.close()


@needs_libvirt
def test_mixed_backends_spawn_migrate_refuse_cross_migration_and_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/mixed.db"
    e = open_embedded(store, "sim://", initial=mixed)
    try:
        c = e.controller.start()
        assert set(e.router.backends) == {"sim", "libvirt"}
        for host, name in ((SIM_HOSTS[0], "s1"), (LV_HOSTS[0], "l1")):
            t = c.wait(c.submit("spawn_vm", spawn(host, name)), 30)
            assert t.state is State.COMMITTED, t.error
        sim, lv = e.router.backends["sim"], e.router.backends["libvirt"]
        assert isinstance(sim, SimDriver) and "s1" in sim.hosts[SIM_HOSTS[0]]["vms"]
        assert LV_HOSTS[0] not in sim.hosts  # libvirt hosts are not the sim's
        domains = {d.name() for d in lv.connection(LV_HOSTS[0]).listAllDomains(0)}  # type: ignore[attr-defined]
        assert domains == {"l1"}
        for vm, dest in ((f"{SIM_HOSTS[0]}/s1", SIM_HOSTS[1]), (f"{LV_HOSTS[0]}/l1", LV_HOSTS[1])):
            t = c.wait(c.submit("migrate_vm", {"vm": vm, "dest": dest}), 30)
            assert t.state is State.COMMITTED, t.error
        t = c.wait(c.submit("migrate_vm", {"vm": f"{SIM_HOSTS[1]}/s1", "dest": LV_HOSTS[0]}), 30)
        assert t.state is State.ABORTED
        assert t.error is not None
        assert "backend" in t.error["message"] and LV_HOSTS[0] in t.error["message"]
        report = c.check()
        assert report["consistent"], report["differences"]
        # Held by this server: another process checks it read-only, the sim's devices only.
        out = subprocess.run(
            [sys.executable, "-m", "tropic.cli", "check", "--store", store, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        live = json.loads(out.stdout)
        assert live["read_only"] and live["consistent"], out.stdout
        assert set(LV_HOSTS) <= set(live["not_read"])
    finally:
        e.close()
    free = check_store(store)  # recovered (libvirt devices provisioned from the model), then checked
    assert free["healthy"] and not free["read_only"], free
    e = open_embedded(store, "sim://")
    try:
        c = e.controller.start()
        assert c.fenced == {}
        report = c.check()
        assert report["consistent"], report["differences"]
        assert "l1" in e.router.reload(LV_HOSTS[1])["hosts"][LV_HOSTS[1]]["vms"]
        t = c.wait(c.submit("destroy_vm", {"vm": f"{LV_HOSTS[1]}/l1"}), 30)
        assert t.state is State.COMMITTED, t.error
    finally:
        e.close()


def test_the_model_refuses_a_migration_between_named_backends() -> None:
    m = mixed()
    c_host = m.nodes[SIM_HOSTS[0]]
    assert c_host.attrs["driver"] == "sim"
    from tropic.model import View

    view = View(m)
    view.get("/compute/us-east", Region)
    host = view.get(SIM_HOSTS[0], Host)
    host.create_vm(name="v", vcpus=1, memory_mib=512, image="", volume="")
    view.get(LV_HOSTS[0], Host).create_config(name="v")
    with pytest.raises(Exception, match="backend"):
        host.migrate(name="v", dest=LV_HOSTS[0])


def test_a_worker_router_reads_the_model_for_a_device_it_does_not_know() -> None:
    model = build_datacenter()
    reads: list[int] = []

    def resolver() -> Model:
        reads.append(1)
        return model

    sim = SimDriver()
    sim.load(project(model))
    router = RouterDriver(sim, resolver=resolver)  # bound to nothing yet, like a fresh worker
    router.execute(Step(1, 0, "/network/us-east/router-1", "set_next_hop", {"next_hop": ""}))
    router.execute(Step(1, 1, "/network/us-east/router-2", "set_next_hop", {"next_hop": ""}))
    assert len(reads) == 1  # the first unknown device bound everything
    router.execute(Step(1, 2, "/network/us-east/router-9", "add_router", {"name": "x"}))
    assert len(reads) == 1  # an added device names its backend itself


class _RealLibvirt(SimDriver):
    """Stands for a libvirt driver on real hypervisors (not in this process)."""

    name = "libvirt"
    uri = "test:///default"

    def in_process(self) -> bool:
        return False


@needs_libvirt
def test_a_new_store_on_real_hypervisors_starts_from_discovery_and_is_never_wiped() -> None:
    from tropic.service.embedded import initial_model, provisionable

    drv = _RealLibvirt()
    model = initial_model(drv)()
    hosts = [p for p, n in model.nodes.items() if n.kind == "host"]
    assert hosts == ["/compute/default/kvm-1"]  # one host per connection: no two hosts share a URI
    assert model.nodes[hosts[0]].attrs["uri"] == "test:///default"
    assert not provisionable(RouterDriver(drv))
    assert provisionable(RouterDriver(SimDriver()))


class _AltSim(SimDriver):
    name = "alt"


HOSTS = [f"/compute/{r}/host-0{i}" for r in ("us-east", "eu-west") for i in (1, 2)]
CONFIG_ACTIONS = ["create_config", "delete_config"]


@given(
    owners=st.lists(st.sampled_from(["sim", "alt"]), min_size=len(HOSTS), max_size=len(HOSTS)),
    steps=st.lists(
        st.tuples(st.sampled_from(HOSTS), st.sampled_from(CONFIG_ACTIONS), st.sampled_from("ab")),
        max_size=20,
    ),
)
@settings(max_examples=40, deadline=None)
def test_a_router_over_backends_behaves_like_one_driver(owners: list[str], steps: list[Any]) -> None:
    """Whatever backend each host is given, every step lands on its host's backend only, and the merged
    inventory is what one driver running the same steps holds."""
    model = build_datacenter(DatacenterSpec(regions=("us-east", "eu-west"), hosts_per_region=2))
    for host, kind in zip(HOSTS, owners, strict=True):
        model.nodes[host].attrs["driver"] = kind
    alt = _AltSim()
    router = RouterDriver(SimDriver(), openers={"alt": lambda: alt})
    router.bind(model, provision=False)
    router.load(project(model))
    reference = SimDriver()
    reference.load(project(model))
    for i, (host, action, name) in enumerate(steps):
        step = Step(1, i, host, action, {"name": name})
        router.execute(step)
        reference.execute(step)
    assert router.inventory() == reference.inventory()
    for host, kind in zip(HOSTS, owners, strict=True):
        assert (host in alt.hosts) == (kind == "alt")
        assert (host in router.default.hosts) == (kind == "sim")  # type: ignore[attr-defined]
