"""Capacity from the device and fleet actions on libvirt: a host declared larger than its hypervisor is
refused when added (naming the host, the declared and the real figures) and reported when bound at start;
a host that does not answer is refused; hosts added by transactions on a sim server are routed to libvirt
by their ``driver`` argument."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING, small_datacenter
from tropic.drivers import Driver, SimDriver, Step
from tropic.drivers.router import RouterDriver
from tropic.errors import DriverError
from tropic.model import project
from tropic.model.schema import Region
from tropic.procedures.base import Registry
from tropic.procedures.standard import STANDARD_PROCEDURES
from tropic.txn import Controller, State

pytestmark = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)
REGION = "/compute/r1"


@pytest.fixture
def lv() -> Iterator[Driver]:
    from tropic.drivers.libvirt import LibvirtDriver

    d = LibvirtDriver("test:///default")
    d.load(project(small_datacenter()))
    try:
        yield d
    finally:
        d.close()


def node_file(tmp_path: Path, cpus: int, memory_mib: int) -> str:
    from tropic.drivers.libvirt_xml import test_node_xml

    f = tmp_path / "node.xml"
    f.write_text(test_node_xml(cpus, memory_mib))
    return f"test://{f}"


def test_capacity_is_read_from_the_node(lv: Driver, tmp_path: Path) -> None:
    assert lv.capacity("/compute/r1/host-01") == (16, 32768)
    uri = node_file(tmp_path, 4, 8192)
    lv.execute(Step(1, 0, REGION, "add_host", {"name": "small", "cpus": 4, "memory_mib": 8192, "uri": uri}))
    assert lv.capacity("/compute/r1/small") == (4, 8192)


def test_a_host_declared_larger_than_its_device_is_refused(lv: Driver, tmp_path: Path) -> None:
    uri = node_file(tmp_path, 4, 8192)
    args = {"name": "big", "cpus": 4, "memory_mib": 200_000, "uri": uri}
    with pytest.raises(DriverError) as err:
        lv.execute(Step(1, 0, REGION, "add_host", args))
    msg = err.value.message
    assert "/compute/r1/big" in msg and "200000 MiB" in msg and "8192 MiB" in msg
    assert "/compute/r1/big" not in lv.inventory()["hosts"]  # not left bound
    # A private test hypervisor is at most 16 CPUs and 32 GiB: a host declared larger does not fit either.
    with pytest.raises(DriverError, match="64 CPUs declared, the device has 16"):
        lv.execute(Step(1, 0, REGION, "add_host", {"name": "huge", "cpus": 64, "memory_mib": 1024}))


def test_a_host_that_does_not_answer_is_refused(lv: Driver) -> None:
    args = {"name": "gone", "cpus": 1, "memory_mib": 1024, "uri": "test:///nonexistent/node.xml"}
    with pytest.raises(DriverError, match="cannot connect"):
        lv.execute(Step(1, 0, REGION, "add_host", args))
    assert "/compute/r1/gone" not in lv.inventory()["hosts"]


def test_configure_checks_the_new_capacity(lv: Driver) -> None:
    host = "/compute/r1/host-01"
    lv.execute(Step(1, 0, host, "configure", {"cpus": 8, "memory_mib": 16384}))
    with pytest.raises(DriverError, match="50000 MiB of memory declared"):
        lv.execute(Step(1, 0, host, "configure", {"cpus": 8, "memory_mib": 50_000}))


def test_bind_reports_hosts_larger_than_their_device(tmp_path: Path) -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    model = small_datacenter()
    model.nodes["/compute/r1/host-02"].attrs.update(
        driver="libvirt", uri=node_file(tmp_path, 2, 4096), memory_mib=250_000
    )
    router = RouterDriver(SimDriver(), openers={"libvirt": lambda: LibvirtDriver("test:///default")})
    try:
        router.bind(model)
        (problem,) = router.capacity_problems
        assert "/compute/r1/host-02" in problem and "250000 MiB" in problem and "4096 MiB" in problem
    finally:
        router.close()


def grow(view: Any, *, name: str, driver: str, memory_mib: int) -> None:
    view.get(REGION, Region).add_host(name=name, cpus=4, memory_mib=memory_mib, driver=driver)


def test_hosts_added_by_transactions_go_to_the_backend_they_name() -> None:
    model = small_datacenter()
    sim = SimDriver()
    router = RouterDriver(sim)
    router.bind(model, provision=False)
    router.load(project(model))
    c = Controller(model, router, registry=Registry.of(STANDARD_PROCEDURES, [grow]))
    with c:
        t = c.wait(c.submit("grow", {"name": "kvm-9", "driver": "libvirt", "memory_mib": 8192}), 30)
        assert t.state is State.COMMITTED, t.error
        assert router.kind_of("/compute/r1/kvm-9") == "libvirt"
        assert "/compute/r1/kvm-9" not in sim.hosts
        assert "/compute/r1/kvm-9" in router.backends["libvirt"].inventory()["hosts"]
        t = c.wait(c.submit("grow", {"name": "kvm-big", "driver": "libvirt", "memory_mib": 200_000}), 30)
        assert t.state is State.ABORTED
        assert t.error is not None and "200000 MiB" in t.error["message"]
        assert "/compute/r1/kvm-big" not in c.model.nodes
        report = c.check()
        assert report["consistent"], report["differences"]
