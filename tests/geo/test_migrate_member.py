"""The cross-region live migration of a replicated service's member (``migrate_member``): one transaction
of five steps (reserve, image and volume present, pre-copy, switch the address, release the source).

A device failure at any step rolls everything back: the member runs where it was, reached by the same
address, and neither region keeps anything of the transaction (no configuration, volume, VM or fetched
image replica). A plan that breaks a constraint (capacity, cordon, the service's spread) is refused in
simulation, before any device is touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.helpers import assert_invariants
from geo.helpers import GROUP, SVC, World, build, ok, run, start
from tropic.drivers import Fault
from tropic.geo.precopy import precopy
from tropic.model import VM, Host
from tropic.model.generate import host_path
from tropic.model.images import ImageVersion
from tropic.txn import State


@pytest.fixture
def world() -> Iterator[World]:
    ctl, sim = start()
    try:
        yield build(ctl, sim)
    finally:
        ctl.stop()


def r3_devices(w: World) -> dict[str, object]:
    """What region r3's devices hold (the destination of every migration below)."""
    inv = w.sim.inventory()
    return {
        "hosts": {p: h for p, h in inv["hosts"].items() if p.startswith("/compute/r3/")},
        "storage": {p: s for p, s in inv["storage"].items() if p.startswith("/storage/r3/")},
    }


def test_a_member_moves_with_its_address(world: World) -> None:
    w = world
    before = w.addresses()
    (addr, (ip, at)) = next((k, v) for k, v in before.items() if v[1].endswith("/m1"))
    uid = w.uid("m1")
    t = ok(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})

    steps = [a.action for a in t.actions]
    assert steps == [
        "create_config",  # 1. reserve
        "add_image",  # 2. the image version fetched to r3 (r3 had no replica)
        "add_replica",
        "clone_image",  # ... and the volume
        "export_volume",
        "import_volume",
        "live_migrate",  # 3. pre-copy
        "switch_address",  # 4.
        "unimport_volume",  # 5. release the source
        "unexport_volume",
        "delete_volume",
        "delete_config",
    ]
    new = w.vm_path("m1")
    assert new.startswith("/compute/r3/") and w.uid("m1") == uid
    assert w.addresses()[addr] == (ip, new)  # the same address, now reaching r3
    assert w.sim.overlay[addr] == new
    assert w.read(lambda v: v.get(new, VM).image) == "/storage/r3/san-1/zk-v1"

    # the pre-copy's figures, from the region pair (r1-r3: 200 ms round trip, 16 MiB window -> 80 MiB/s)
    live = next(a for a in t.actions if a.action == "live_migrate")
    model = precopy(4096, dirty_mib_s=20.0, bandwidth_mib_s=80.0, rtt_ms=200.0)
    assert live.args["downtime_s"] == pytest.approx(model.downtime_s, rel=1e-4)
    assert live.args["rounds"] == model.rounds
    disk_s = 2 * 1024 / 80.0  # the volume (2 GiB: cloned from the 2048 MiB image), at the same rate
    assert live.args["transfer_s"] == pytest.approx(model.transfer_s + disk_s, rel=1e-4)
    fetched = next(a for a in t.actions if a.action == "add_replica")
    # fetched from the nearest replica: r2's (m2's spawn put one there), 120 ms away at 16/0.12 MiB/s
    assert fetched.args["source"] == "/storage/r2/san-1/zk-v1"
    assert fetched.args["transfer_s"] == pytest.approx(0.12 + 2048 / (16 / 0.12), rel=1e-4)

    # the source released: no VM, configuration or volume of m1 left in r1 (its cached image replica
    # stays: the image store's copy, collected by gc_image when no longer in use)
    inv = w.sim.inventory()
    assert "m1" not in inv["hosts"][at.rsplit("/", 1)[0]]["configs"]
    assert "vol-m1" not in inv["storage"]["/storage/r1/san-1"]["volumes"]
    assert "zk-v1" in inv["storage"]["/storage/r1/san-1"]["images"]
    v1 = w.read(lambda v: v.get("/images/zk/v1", ImageVersion).replicas)
    assert set(v1) == {"r1", "r2", "r3"}
    assert_invariants(w.ctl)


# One injected device failure per forward action of the log, grouped by the step they belong to; with
# after=True the device applies the action and then reports the failure ("did it happen?").
STEPS = {
    "create_config": 1,
    "add_image": 2,
    "clone_image": 2,
    "export_volume": 2,
    "import_volume": 2,
    "live_migrate": 3,
    "switch_address": 4,
    "unimport_volume": 5,
    "unexport_volume": 5,
    "delete_volume": 5,
    "delete_config": 5,
}


@pytest.mark.parametrize("after", [False, True], ids=["before-effect", "after-effect"])
@pytest.mark.parametrize("action", list(STEPS), ids=[f"step{n}-{a}" for a, n in STEPS.items()])
def test_a_failure_at_any_step_leaves_the_member_where_it_was(world: World, action: str, after: bool) -> None:
    w = world
    at = w.vm_path("m1")
    addresses = w.addresses()
    overlay = dict(w.sim.overlay)
    r3 = r3_devices(w)
    replicas = w.read(lambda v: dict(v.get("/images/zk/v1", ImageVersion).replicas))
    w.sim.inject(Fault(action=action, after=after))

    t = run(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
    assert t.state is State.ABORTED, t.error
    assert action in str(t.error)
    assert w.vm_path("m1") == at  # still where it was ...
    assert w.sim.inventory()["hosts"][at.rsplit("/", 1)[0]]["vms"]["m1"]["state"] == "running"
    assert w.addresses() == addresses  # ... reached by its address
    assert dict(w.sim.overlay) == overlay
    assert r3_devices(w) == r3  # no orphan at the destination (configuration, volume, VM, image)
    assert w.read(lambda v: dict(v.get("/images/zk/v1", ImageVersion).replicas)) == replicas
    w.sim.clear_faults()
    assert_invariants(w.ctl)  # the model equals the devices everywhere: no orphan at the source either
    # and the member can still move
    ok(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
    assert_invariants(w.ctl)


def _refused_untouched(w: World, args: dict[str, object], constraint: str) -> None:
    calls = w.sim.calls
    devices = w.sim.inventory()
    t = run(w.ctl, "migrate_member", {"service": "zk", "member": "m1", **args})
    assert t.state is State.ABORTED
    assert t.violation is not None and t.violation.constraint == constraint, (t.error, t.violation)
    assert w.sim.calls == calls and w.sim.inventory() == devices  # no device was touched
    assert w.vm_path("m1").startswith("/compute/r1/")
    assert_invariants(w.ctl)


def test_a_plan_breaking_the_spread_is_refused_before_any_device(world: World) -> None:
    # m2 runs in r2: a second member there breaks the service's spread (anti-affinity by region)
    _refused_untouched(world, {"dest": host_path("r2", 2)}, "AddressGroup.members_spread")


def test_a_plan_breaking_capacity_is_refused_before_any_device(world: World) -> None:
    w = world
    ok(w.ctl, "resize_vm", {"vm": "m1", "vcpus": 2, "memory_mib": 16384})
    ok(
        w.ctl,
        "spawn_vm",
        {
            "name": "big",
            "image": "/storage/r3/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 1024,
            "host": host_path("r3", 1),
        },
    )
    _refused_untouched(w, {"dest": host_path("r3", 1)}, "Host.memory_fits")


def test_a_plan_onto_a_cordoned_host_is_refused_before_any_device(world: World) -> None:
    w = world
    ok(w.ctl, "cordon_host", {"host": host_path("r3", 1)})
    _refused_untouched(w, {"dest": host_path("r3", 1)}, "Host.cordon_respected")
    # without a host named, the cordoned one is never chosen
    ok(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
    assert w.vm_path("m1").startswith(host_path("r3", 2))


def test_bad_requests_name_the_resource(world: World) -> None:
    w = world
    t = run(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "dest": host_path("r1", 2)})
    assert t.state is State.ABORTED and "another region" in str(t.error)
    t = run(w.ctl, "migrate_member", {"service": "zk", "member": "m1"})
    assert t.state is State.ABORTED and "destination" in str(t.error)
    ok(
        w.ctl,
        "spawn_vm",
        {
            "name": "lone",
            "image": "/storage/r1/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 512,
            "host": host_path("r1", 2),
        },
    )
    t = run(w.ctl, "migrate_member", {"service": "zk", "member": "lone", "region": "r3"})
    assert t.state is State.ABORTED and "not a member" in str(t.error) and SVC in str(t.error)
    assert w.read(lambda v: v.get(host_path("r1", 1), Host).configs) == ["m1"]
    assert GROUP


def test_members_addresses_are_unique_and_never_reused(world: World) -> None:
    w = world
    first = {ip for ip, _ in w.addresses().values()}
    assert len(first) == 2
    ok(w.ctl, "destroy_member", {"service": "zk", "vm": "m1"})
    ok(w.ctl, "spawn_member", {"service": "zk", "name": "m3", "host": host_path("r3", 1)})
    ips = [ip for ip, _ in w.addresses().values()]
    assert len(ips) == 2
    assert len(set(ips) | first) == 3
    assert_invariants(w.ctl)
    ok(w.ctl, "delete_replicated_service", {"service": "zk"})
    assert w.sim.overlay == {}
    assert_invariants(w.ctl)


def test_concurrent_moves_never_break_the_spread_together(world: World) -> None:
    """Two members sent to the same region at once: the migrations read the service's addresses, so they
    are isolated (the second waits for the first and is simulated again on its result): one commits, the
    other is refused by the spread, and no device is left with a trace of it."""
    w = world
    a = w.ctl.submit("migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
    b = w.ctl.submit("migrate_member", {"service": "zk", "member": "m2", "region": "r3"})
    ta, tb = w.ctl.wait(a, 60), w.ctl.wait(b, 60)
    assert sorted([ta.state.value, tb.state.value]) == ["ABORTED", "COMMITTED"]
    refused = ta if ta.state is State.ABORTED else tb
    assert refused.violation is not None and refused.violation.constraint == "AddressGroup.members_spread"
    regions = sorted(w.vm_path(n).split("/")[2] for n in ("m1", "m2"))
    assert "r3" in regions and len(set(regions)) == 2
    assert_invariants(w.ctl)


def test_a_service_spans_providers() -> None:
    from geo.helpers import world_model

    model = world_model()
    for region, provider in (("r1", "aws"), ("r2", "gcp"), ("r3", "azure")):
        model.nodes[f"/compute/{region}"].attrs["provider"] = provider
    ctl, sim = start(model)
    try:
        w = build(ctl, sim)
        ok(w.ctl, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
        from tropic.api.geo_views import members_of

        rows = w.read(lambda v: members_of(w.ctl.model, SVC))
        assert sorted(r["provider"] for r in rows) == ["azure", "gcp"]
        assert all(r["address"] for r in rows)
        assert_invariants(w.ctl)
    finally:
        ctl.stop()
