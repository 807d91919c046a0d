"""What only the libvirt driver has: host -> connection mapping, native states, libvirt errors as tropic
errors, real migration with its fallback, reload, and what libvirt itself shows after each action."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.kit import H1, H2, H3, HAVE_LIBVIRT, IMG, LIBVIRT_MISSING, SAN, small_datacenter
from tropic.drivers import Step
from tropic.drivers.libvirt_xml import NATIVE_STATES, VMState, parse_domain, vm_state
from tropic.errors import ConfigError, DeviceFault, DriverError
from tropic.model import Host, project
from tropic.txn import Controller, State

pytestmark = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)

VOL = f"{SAN}/vol-vm-a"
VM_ARGS: dict[str, Any] = {"name": "vm-a", "vcpus": 3, "memory_mib": 1536, "image": f"{SAN}/{IMG}"}


def lv() -> Any:
    import libvirt

    return libvirt


@pytest.fixture
def drv() -> Iterator[Any]:
    from tropic.drivers.libvirt import LibvirtDriver

    d = LibvirtDriver("test:///default")
    d.load(project(small_datacenter()))
    yield d
    d.close()


def do(d: Any, path: str, action: str, args: dict[str, Any] | None = None) -> None:
    d.execute(Step(1, 0, path, action, args or {}))


def spawn(d: Any, host: str = H1, name: str = "vm-a", state: str = "running") -> None:
    vol = f"vol-{name}"
    do(d, SAN, "clone_image", {"image": IMG, "volume": vol})
    do(d, f"{SAN}/{vol}", "export_volume")
    do(d, host, "import_volume", {"volume": f"{SAN}/{vol}"})
    do(d, host, "create_vm", {**VM_ARGS, "name": name, "volume": f"{SAN}/{vol}", "state": state})


# --- native states ------------------------------------------------------------------------------------
def test_every_native_domain_state_maps_to_a_tropic_state() -> None:
    libvirt = lv()
    names = ("NOSTATE", "RUNNING", "BLOCKED", "PAUSED", "SHUTDOWN", "SHUTOFF", "CRASHED", "PMSUSPENDED")
    assert NATIVE_STATES.keys() == {getattr(libvirt, f"VIR_DOMAIN_{n}") for n in names}
    assert vm_state(libvirt.VIR_DOMAIN_RUNNING) is VMState.RUNNING
    assert vm_state(libvirt.VIR_DOMAIN_BLOCKED) is VMState.RUNNING
    assert vm_state(libvirt.VIR_DOMAIN_SHUTOFF) is VMState.STOPPED
    for s in ("NOSTATE", "PAUSED", "SHUTDOWN", "CRASHED", "PMSUSPENDED"):
        assert vm_state(getattr(libvirt, f"VIR_DOMAIN_{s}")) is VMState.UNKNOWN
    assert vm_state(99) is VMState.UNKNOWN  # a state a later libvirt may add


def test_a_paused_domain_is_reported_unknown_and_seen_as_drift(drv: Any) -> None:
    spawn(drv)
    drv.connection(H1).lookupByName("vm-a").suspend()  # outside tropic
    assert drv.inventory()["hosts"][H1]["vms"]["vm-a"]["state"] == "unknown"


# --- what libvirt holds ---------------------------------------------------------------------------------
def test_the_domain_carries_the_models_sizes_disk_and_metadata(drv: Any) -> None:
    spawn(drv)
    conn = drv.connection(H1)
    dom = conn.lookupByName("vm-a")
    xml = dom.XMLDesc(0)
    info = parse_domain(xml)
    assert (info.vcpus, info.memory_mib, info.role, info.image, info.volume) == (
        3,
        1536,
        "vm",
        f"{SAN}/{IMG}",
        VOL,
    )
    assert dom.maxMemory() == 1536 * 1024 and dom.info()[3] == 3
    san = drv.connection(SAN)
    vol = san.storagePoolLookupByName("tropic-volumes").storageVolLookupByName("vol-vm-a")
    assert f"<source file='{vol.path()}'/>" in xml
    img = san.storagePoolLookupByName("tropic-images").storageVolLookupByName(IMG)
    assert f"<path>{img.path()}</path>" in vol.XMLDesc(0)  # a copy-on-write clone backed by the image


def test_each_host_is_its_own_hypervisor(drv: Any) -> None:
    spawn(drv, H1, "same")
    spawn(drv, H2, "same2")
    do(drv, H2, "create_vm", {**VM_ARGS, "name": "same", "volume": ""})
    uris = drv.uris()
    assert len(set(uris.values())) == len(uris)
    assert {d.name() for d in drv.connection(H1).listAllDomains(0)} == {"same"}
    assert {d.name() for d in drv.connection(H2).listAllDomains(0)} == {"same", "same2"}
    assert {d.name() for d in drv.connection(H3).listAllDomains(0)} == set()


def test_a_vm_without_configuration_is_a_transient_domain(drv: Any) -> None:
    spawn(drv)
    do(drv, H1, "delete_config", {"name": "vm-a"})
    dom = drv.connection(H1).lookupByName("vm-a")
    assert dom.isActive() and not dom.isPersistent()
    h = drv.inventory()["hosts"][H1]
    assert "vm-a" in h["vms"] and h["configs"] == []
    do(drv, H1, "create_config", {"name": "vm-a"})
    assert drv.connection(H1).lookupByName("vm-a").isPersistent()


def test_deleting_the_configuration_of_a_stopped_vm_is_refused(drv: Any) -> None:
    spawn(drv, state="stopped")
    with pytest.raises(DriverError, match="stopped VM vm-a") as err:
        do(drv, H1, "delete_config", {"name": "vm-a"})
    assert err.value.path == f"{H1}/vm-a"


def test_create_vm_never_overwrites_a_domain_tropic_did_not_define(drv: Any) -> None:
    drv.connection(H1).defineXML(
        "<domain type='test'><name>vm-a</name><memory>1024</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
    with pytest.raises(DriverError, match="not managed by tropic") as err:
        do(drv, H1, "create_vm", {**VM_ARGS, "volume": ""})
    assert err.value.path == f"{H1}/vm-a"


# --- errors --------------------------------------------------------------------------------------------
def test_a_libvirt_failure_names_host_uri_and_resource(drv: Any) -> None:
    from tropic.drivers.libvirt import refuse_domains

    drv.customize_domain = refuse_domains("vm-a")
    spawn_err = None
    try:
        spawn(drv)
    except DeviceFault as e:
        spawn_err = e
    assert spawn_err is not None
    assert spawn_err.path == f"{H1}/vm-a"
    assert H1 in spawn_err.message and drv.uris()[H1] in spawn_err.message
    assert "parsecs" in spawn_err.message  # libvirt's own words
    assert drv.inventory()["hosts"][H1]["vms"] == {}


def test_a_connection_failure_names_the_host() -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    d = LibvirtDriver(hosts={H1: "test:///nonexistent/tropic-node.xml"})
    try:
        with pytest.raises(DriverError) as err:
            do(d, H1, "create_config", {"name": "x"})
        assert err.value.path == H1
        assert H1 in err.value.message and "test:///nonexistent/tropic-node.xml" in err.value.message
        with pytest.raises(DriverError) as err:
            d.inventory()
        assert err.value.path == H1
    finally:
        d.close()


def test_two_hosts_on_one_real_connection_are_refused() -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    model = small_datacenter()
    for h in (H1, H2):
        model.nodes[h].attrs["uri"] = "libvirt+qemu+ssh://root@kvm-1/system"
    d = LibvirtDriver()
    with pytest.raises(ConfigError, match="both map to qemu\\+ssh://root@kvm-1/system"):
        d.bind(model)  # refused before any connection is attempted
    d.close()


def test_load_refuses_real_hypervisors() -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    d = LibvirtDriver(hosts={H1: "qemu:///system"})
    with pytest.raises(ConfigError, match="refusing to wipe qemu:///system"):
        d.load(project(small_datacenter()))
    d.close()


def test_bind_maps_hosts_by_their_uri_attribute(tmp_path: Any) -> None:
    from tropic.drivers.libvirt import LibvirtDriver
    from tropic.drivers.libvirt_xml import test_node_xml

    node = tmp_path / "h1.xml"
    node.write_text(test_node_xml())
    model = small_datacenter()
    model.nodes[H1].attrs["uri"] = f"libvirt+test://{node}"
    model.nodes[H2].attrs["uri"] = "test:///default"
    d = LibvirtDriver().bind(model)
    try:
        uris = d.uris()
        assert uris[H1] == f"test://{node}"
        assert uris[H2] != uris[H3] and uris[H2].startswith("test:///")  # private test hypervisors
        assert model.get(H1, Host).uri.endswith("h1.xml")
        d.load(project(model))
        assert d.inventory() == project(model)
    finally:
        d.close()


# --- migration ------------------------------------------------------------------------------------------
def test_auto_migration_tries_libvirt_migrate_then_falls_back(drv: Any) -> None:
    spawn(drv)
    do(drv, H2, "create_config", {"name": "vm-a"})
    do(drv, H1, "migrate", {"name": "vm-a", "dest": H2})
    assert drv.migrations == {"live": 0, "copy": 1}  # the test hypervisor has no virDomainMigrate
    src = drv.connection(H1).lookupByName("vm-a")
    dst = drv.connection(H2).lookupByName("vm-a")
    assert not src.isActive() and parse_domain(src.XMLDesc(2)).role == "config"
    assert dst.isActive() and dst.isPersistent() and parse_domain(dst.XMLDesc(2)).role == "vm"


def test_live_only_migration_fails_cleanly_where_unsupported(drv: Any) -> None:
    spawn(drv)
    do(drv, H2, "create_config", {"name": "vm-a"})
    before = drv.inventory()
    drv.migration = "live"
    with pytest.raises(DeviceFault, match="not supported") as err:
        do(drv, H1, "migrate", {"name": "vm-a", "dest": H2})
    assert err.value.path == f"{H1}/vm-a" and H1 in err.value.message and H2 in err.value.message
    assert drv.inventory() == before  # the destination's configuration was put back


@pytest.mark.parametrize("stage", ["defined-on-destination", "stopped-on-source", "source-demoted"])
def test_a_copy_migration_redone_after_a_crash_completes(drv: Any, stage: str) -> None:
    """The states a crash can leave between the stages of a copy migration; the redo finishes the job."""
    from tropic.drivers.libvirt_xml import with_role

    spawn(drv)
    do(drv, H2, "create_config", {"name": "vm-a"})
    src, dst = drv.connection(H1), drv.connection(H2)
    placeholder = parse_domain(dst.lookupByName("vm-a").XMLDesc(2))
    dst.defineXML(with_role(src.lookupByName("vm-a").XMLDesc(2), "vm", uuid_=placeholder.uuid, boot=True))
    if stage != "defined-on-destination":
        src.lookupByName("vm-a").destroy()
    if stage == "source-demoted":
        src.defineXML(with_role(src.lookupByName("vm-a").XMLDesc(2), "config"))
    assert not dst.lookupByName("vm-a").isActive()  # never two copies running
    do(drv, H1, "migrate", {"name": "vm-a", "dest": H2})
    h1, h2 = drv.inventory()["hosts"][H1], drv.inventory()["hosts"][H2]
    assert h1["vms"] == {} and h1["configs"] == ["vm-a"] and h1["volumes"] == []
    assert h2["vms"]["vm-a"]["state"] == "running" and h2["volumes"] == [VOL]
    assert not parse_domain(dst.lookupByName("vm-a").XMLDesc(2)).boot  # the intent was cleared


def test_a_copy_migration_never_runs_two_copies(drv: Any) -> None:
    spawn(drv)
    do(drv, H2, "create_config", {"name": "vm-a"})
    src, dst = drv.connection(H1), drv.connection(H2)
    seen: list[tuple[bool, bool]] = []
    find_src, find_dst = src.lookupByName, dst.lookupByName

    def both_states(name: str) -> None:
        seen.append((bool(find_src(name).isActive()), bool(find_dst(name).isActive())))

    def spy_src(name: str) -> Any:
        both_states(name)
        return find_src(name)

    def spy_dst(name: str) -> Any:
        both_states(name)
        return find_dst(name)

    src.lookupByName, dst.lookupByName = spy_src, spy_dst  # every look-up the driver makes samples both
    try:
        do(drv, H1, "migrate", {"name": "vm-a", "dest": H2})
    finally:
        del src.lookupByName, dst.lookupByName
    assert len(seen) >= 4
    assert (True, True) not in seen
    assert dst.lookupByName("vm-a").isActive() and not src.lookupByName("vm-a").isActive()


# --- reload -----------------------------------------------------------------------------------------------
def test_reload_reads_what_a_host_really_holds(drv: Any) -> None:
    spawn(drv)
    drv.connection(H1).createXML(
        "<domain type='test'><name>intruder</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>",
        0,
    )
    got = drv.reload(H1)
    assert set(got["hosts"]) == {H1} and got["storage"] == {} and got["routers"] == {}
    h = got["hosts"][H1]
    assert h["vms"]["intruder"] == {
        "vcpus": 1,
        "memory_mib": 256,
        "image": "",
        "volume": "",
        "state": "running",
    }
    assert h["configs"] == ["vm-a"]  # the intruder is transient: no configuration
    assert h["vms"]["vm-a"]["volume"] == VOL and h["volumes"] == [VOL]
    assert set(drv.reload("/compute/r1")["hosts"]) == {H1, H2, H3}
    assert drv.reload(SAN)["storage"][SAN]["volumes"] == {
        "vol-vm-a": {"image": f"{SAN}/{IMG}", "exported": True}
    }
    assert set(drv.reload("/network")["routers"]) == {"/network/r1/router-1", "/network/r1/router-2"}
    assert drv.reload("/") == drv.inventory()
    with pytest.raises(DriverError) as err:
        drv.reload("/compute/r9")
    assert err.value.path == "/compute/r9"


def test_volumes_and_images_added_outside_tropic_are_seen(drv: Any) -> None:
    pool = drv.connection(SAN).storagePoolLookupByName("tropic-volumes")
    pool.createXML("<volume><name>stray</name><capacity>1024</capacity></volume>", 0)
    assert drv.inventory()["storage"][SAN]["volumes"]["stray"] == {"image": "", "exported": False}


# --- the controller on libvirt ----------------------------------------------------------------------------
def test_a_real_libvirt_failure_rolls_back_the_spawn(drv: Any) -> None:
    from tropic.drivers.libvirt import refuse_domains

    model = small_datacenter()
    drv.customize_domain = refuse_domains("bad")
    args = {"host": H1, "image": f"{SAN}/{IMG}", "vcpus": 1, "memory_mib": 512}
    with Controller(model, drv, workers=4) as c:
        ok = c.wait(c.submit("spawn_vm", {**args, "name": "ok"}), 30)
        bad = c.wait(c.submit("spawn_vm", {**args, "name": "bad"}), 30)
        assert ok.state is State.COMMITTED and bad.state is State.ABORTED
        assert (
            bad.error is not None and "parsecs" in bad.error["message"] and bad.error["path"] == f"{H1}/bad"
        )
        conn = drv.connection(H1)
        assert {d.name() for d in conn.listAllDomains(0)} == {"ok"}
        san = drv.connection(SAN)
        assert [v.name() for v in san.storagePoolLookupByName("tropic-volumes").listAllVolumes(0)] == [
            "vol-ok"
        ]
        assert [v.name() for v in san.storagePoolLookupByName("tropic-exports").listAllVolumes(0)] == [
            "vol-ok"
        ]
        report = c.check()
        assert report["consistent"] and report["orphans"] == []


def test_concurrent_workers_on_many_hosts(drv: Any) -> None:
    model = small_datacenter()
    with Controller(model, drv, workers=8) as c:
        txns = [
            c.submit(
                "spawn_vm",
                {
                    "host": h,
                    "name": f"{h.rsplit('/', 1)[1]}-vm{i}",
                    "image": f"{SAN}/{IMG}",
                    "vcpus": 1,
                    "memory_mib": 256,
                },
            )
            for i in range(8)
            for h in (H1, H2, H3)
        ]
        assert c.drain(60)
        assert all(t.state is State.COMMITTED for t in txns), [t.error for t in txns if t.error]
        moves = [
            c.submit("migrate_vm", {"vm": f"{H1}/host-01-vm{i}", "dest": H2 if i % 2 else H3})
            for i in range(4)
        ]
        assert c.drain(60)
        assert all(t.state is State.COMMITTED for t in moves), [t.error for t in moves if t.error]
        report = c.check()
        assert report["consistent"], report["differences"]
        assert report["orphans"] == []
    assert threading.active_count() < 50
