"""Plan and apply in process: from any fleet to any other, the fleet procedures run in the diff's order
make the model match the file, the devices match the model, and no constraint is broken; what cannot be
done aborts with the reason and leaves everything as it was."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inventory_harness import SIM

from tropic.drivers import SimDriver
from tropic.errors import InvalidArguments
from tropic.inventory import (
    Fleet,
    Inventory,
    build_model,
    calls_in_order,
    diff,
    dumps,
    load,
    loads,
    tree_of_model,
)
from tropic.inventory.schema import HostSpec, ImageSpec, NetworkSpec, RegionSpec, RouterSpec, StorageSpec
from tropic.model import project
from tropic.procedures import REGISTRY
from tropic.procedures.inventory import parse_labels
from tropic.txn import Controller, State


def controller_for(inv: Inventory) -> Controller:
    model = build_model(inv)
    driver = SimDriver()
    driver.load(project(model))
    return Controller(model, driver, registry=REGISTRY).start()


def apply_in_process(c: Controller, inv: Inventory, *, vms: bool = False) -> list[Any]:
    out = []
    for _, call in calls_in_order(diff(inv, tree_of_model(c.model), vms=vms)):
        t = c.wait(c.submit(call.procedure, call.args))
        out.append(t)
        if t.state is not State.COMMITTED:
            break
    return out


def test_apply_adds_changes_and_removes_resources_by_transactions() -> None:
    base = load(SIM)
    c = controller_for(base)
    try:
        f = base.fleet
        hosts = [h for h in f.hosts if h.name != "kvm-1" or h.region != "eu-west"]
        hosts.append(HostSpec(name="kvm-9", region="ap", cpus=4, memory_mib=4096, labels={"t": "x"}))
        hosts[0] = hosts[0].model_copy(update={"labels": {"tier": "db"}, "cpu_overcommit": 2.0})
        storage = [f.storage[0], StorageSpec(name="san-2", region="ap", images=[ImageSpec(name="img-a")])]
        nets = [
            f.networks[0].model_copy(
                update={
                    "routers": [RouterSpec(name="router-1", next_hop="router-4"), RouterSpec(name="router-4")]
                }
            )
        ]
        regions = [*f.regions, RegionSpec(name="ap", location="ap-south-1", labels={"k": "v"})]
        regions = [r for r in regions if r.name != "eu-west"]
        target = Inventory(Fleet(regions=regions, hosts=hosts, storage=storage, networks=nets, vms=f.vms))
        changes = diff(target, tree_of_model(c.model))
        ops = {(ch.op, ch.path) for ch in changes}
        assert ("+", "/compute/ap") in ops and ("-", "/compute/eu-west") in ops
        assert ("-", "/network/eu-west") in ops and ("+", "/network/us-east/router-4") in ops
        done = apply_in_process(c, target)
        assert [t.state for t in done] == [State.COMMITTED] * len(done), [t.error for t in done]
        assert diff(target, tree_of_model(c.model)) == []
        assert c.model.nodes["/compute/ap/kvm-9"].attrs["labels"] == {"t": "x"}
        assert c.model.nodes["/storage/ap"].attrs["labels"] == {"k": "v"}
        assert "/storage/eu-west" not in c.model.nodes and "/network/eu-west" not in c.model.nodes
        assert c.model.nodes["/network/us-east/router-1"].attrs["next_hop"] == "/network/us-east/router-4"
        assert c.check()["consistent"]
    finally:
        c.stop()


def test_a_refused_change_aborts_with_its_reason_and_changes_nothing() -> None:
    base = load(SIM)
    c = controller_for(base)
    try:
        before = dict(c.model.nodes)
        hosts = [h for h in base.fleet.hosts if h.name != "kvm-2"]  # kvm-2 holds batch-1
        vms = [v for v in base.fleet.vms if v.name != "batch-1"]  # not destroyed without --vms
        target = Inventory(base.fleet.model_copy(update={"hosts": hosts, "vms": vms}))
        (t,) = apply_in_process(c, target)
        assert t.state is State.ABORTED and "still holds" in t.error["message"]
        assert c.model.nodes == before
        # Shrinking a host below what its VMs use is refused by the model's constraints.
        small = [
            h.model_copy(update={"memory_mib": 1024}) if h.name == "kvm-2" else h for h in base.fleet.hosts
        ]
        (t,) = apply_in_process(c, Inventory(base.fleet.model_copy(update={"hosts": small})))
        assert t.state is State.ABORTED and t.error["code"] == "constraint_violation", t.error
        assert c.model.nodes == before
    finally:
        c.stop()


def test_vms_change_only_when_asked() -> None:
    base = load(SIM)
    c = controller_for(base)
    try:
        vms = [v.model_copy(update={"memory_mib": 1024, "state": "stopped"}) for v in base.fleet.vms[:1]]
        target = Inventory(base.fleet.model_copy(update={"vms": vms}))
        changes = diff(target, tree_of_model(c.model))
        assert changes and not any(ch.applicable for ch in changes)
        assert apply_in_process(c, target) == []
        done = apply_in_process(c, target, vms=True)
        assert all(t.state is State.COMMITTED for t in done) and len(done) == 3  # resize, stop, destroy
        assert diff(target, tree_of_model(c.model), vms=True) == []
        assert "/compute/us-east/kvm-2/batch-1" not in c.model.nodes
        assert c.check()["consistent"]
    finally:
        c.stop()


def test_labels_and_changes_arguments_are_checked() -> None:
    assert parse_labels("a=1, b=x") == {"a": "1", "b": "x"}
    assert parse_labels('{"a": "1"}') == {"a": "1"}
    assert parse_labels("") == {}
    for bad in ("a", "a=1,a=2", '{"a": 1}', "{oops"):
        with pytest.raises(InvalidArguments):
            parse_labels(bad)
    c = controller_for(load(SIM))
    try:
        t = c.wait(
            c.submit("configure_host", {"host": "/compute/us-east/kvm-1", "changes": '{"colour": "x"}'})
        )
        assert t.state is State.ABORTED and "cannot change ['colour']" in str(t.error)
        t = c.wait(
            c.submit(
                "add_host", {"region": "us-east", "name": "k", "cpus": 1, "memory_mib": 1, "driver": "xen"}
            )
        )
        assert t.state is State.ABORTED and "unknown driver" in str(t.error)
    finally:
        c.stop()


# --- any fleet to any other -------------------------------------------------------------------------------
NAMES = ("a", "b")


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    regions = [
        RegionSpec(name=r, location=draw(st.sampled_from(["", "x-1"]))) for r in NAMES if draw(st.booleans())
    ]
    hosts, storage = [], []
    for r in regions:
        for h in ("h1", "h2", "h3"):
            if draw(st.booleans()):
                labels = draw(
                    st.dictionaries(st.sampled_from(["t", "u"]), st.sampled_from(["1", "2"]), max_size=2)
                )
                hosts.append(
                    HostSpec(
                        name=h, region=r.name, cpus=draw(st.integers(1, 8)), memory_mib=1024, labels=labels
                    )
                )
        if draw(st.booleans()):
            images = [ImageSpec(name=i) for i in ("i1", "i2") if draw(st.booleans())]
            storage.append(StorageSpec(name="s1", region=r.name, images=images))
    nets = []
    for n in NAMES:
        if draw(st.booleans()):
            names = [name for name in ("r1", "r2", "r3") if draw(st.booleans())]
            routers = []
            for name in names:
                others = [o for o in names if o != name]
                hop = draw(st.sampled_from(["", *others]))
                routers.append(RouterSpec(name=name, next_hop=hop))
            nets.append(NetworkSpec(name=n, routers=routers))
    return Fleet(regions=regions, hosts=hosts, storage=storage, networks=nets)


@settings(max_examples=50)
@given(first=fleets(), second=fleets())
def test_apply_takes_any_fleet_to_any_other(first: Fleet, second: Fleet) -> None:
    c = controller_for(Inventory(first))
    try:
        target = Inventory(second)
        done = apply_in_process(c, target)
        assert all(t.state is State.COMMITTED for t in done), [t.error for t in done]
        assert diff(target, tree_of_model(c.model)) == []
        assert c.check()["consistent"]
    finally:
        c.stop()


@given(fleet=fleets(), fmt=st.sampled_from(["toml", "yaml"]))
def test_a_written_fleet_reads_back_the_same(fleet: Fleet, fmt: str) -> None:
    assert loads(dumps(fleet, fmt), fmt, f"f.{fmt}").fleet == fleet


class SmallPages:
    """The API's resource reads with a tiny per-response node limit, to exercise reading in pieces."""

    def __init__(self, model: Any, max_nodes: int) -> None:
        self.model, self.max_nodes, self.requests = model, max_nodes, 0

    def resources(self, path: str = "/", *, depth: int = 1) -> dict[str, Any]:
        from tropic.api.views import subtree

        self.requests += 1
        return subtree(self.model, path, depth, max_nodes=self.max_nodes)


@pytest.mark.parametrize("max_nodes", [5000, 7, 5])
def test_the_model_is_read_whole_whatever_the_page_limit(max_nodes: int) -> None:
    from tropic.inventory.remote import fetch_tree

    model = build_model(load(SIM))
    pages = SmallPages(model, max_nodes)
    tree = fetch_tree(pages)  # type: ignore[arg-type]
    assert tree == {p: (k, a) for p, (k, a) in tree_of_model(model).items() if p != "/"}
    if max_nodes == 5000:
        assert pages.requests == 4  # /compute, /storage, /network and /jobs
    else:
        assert pages.requests > 4


def test_cordoned_is_applied_only_by_a_server_with_the_cordon_procedures() -> None:
    base = load(SIM)
    tree = tree_of_model(build_model(base))
    hosts = [h.model_copy(update={"cordoned": h.name == "kvm-2"}) for h in base.fleet.hosts]
    target = Inventory(base.fleet.model_copy(update={"hosts": hosts}))
    (without,) = diff(target, tree)
    assert without.detail == "cordoned: false -> true" and not without.applicable
    assert "no cordon_host procedure" in without.note
    (change,) = diff(target, tree, procedures={"cordon_host", "uncordon_host"})
    assert change.applicable and [(c.procedure, c.args) for c in change.calls] == [
        ("cordon_host", {"host": "/compute/us-east/kvm-2"})
    ]
