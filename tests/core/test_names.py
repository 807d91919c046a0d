"""The naming rule: a resource name is a DNS label of at most 63 characters, checked wherever a name enters
the model (a procedure's arguments, an action creating a resource, building a model, a reload adopting a
device's resource); paths are checked for shape. Resources named before the rule stay reachable."""

from __future__ import annotations

from typing import Annotated

import pytest

from core.helpers import small_dc, spawn
from tropic.drivers import SimDriver
from tropic.errors import InvalidArguments, UnknownResource
from tropic.model import VM, ComputeRoot, Host, Model, Node, Region, View, check_path, name_pattern, project
from tropic.model.names import MAX_NAME_LENGTH, name_error, path_error
from tropic.procedures import REGISTRY, Registry
from tropic.procedures.base import Name
from tropic.procedures.standard import MAX_VM_NAME_LENGTH
from tropic.reconcile import Reconciler
from tropic.txn import Controller, State

BAD = [
    ".",
    "..",
    "x\0y",
    "a\nb",
    "\u202eevil",
    "x" * 10_000,
    "Web-1",
    "a_b",
    "-a",
    "a-",
    "",
    "a/b",
    "a b",
    "é",
]
GOOD = ["a", "0", "007", "web-1", "host-01", "a" * MAX_NAME_LENGTH, "1-2-3"]


@pytest.mark.parametrize("name", BAD, ids=ascii)
def test_bad_names_are_refused_with_a_short_escaped_message(name: str) -> None:
    problem = name_error(name)
    assert problem is not None
    assert len(problem) < 300 and "\n" not in problem and "\0" not in problem and "\u202e" not in problem


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name: str) -> None:
    assert name_error(name) is None
    assert name_error("a" * (MAX_NAME_LENGTH + 1)) is not None


def test_the_published_pattern_is_the_rule() -> None:
    import re

    for name in BAD + GOOD:
        assert (re.fullmatch(name_pattern()[1:-1], name) is not None) == (name_error(name) is None), name


@pytest.mark.parametrize(
    "path", ["/a/..", "/a/./b", "..", "/..", "//", "/a/", "a", "/a\0b", "/a\nb", "/\u202e", "/\udcff"]
)
def test_malformed_paths_name_no_resource(path: str) -> None:
    assert path_error(path) is not None
    with pytest.raises(UnknownResource, match="is not a resource path"):
        check_path(path)


def test_building_a_model_refuses_bad_names() -> None:
    m = Model(small_dc().schema)
    m.add("/compute", ComputeRoot)
    for name in ("..", "US-East", "x" * 64):
        with pytest.raises(InvalidArguments, match=r"not a valid name|longer than"):
            m.add(f"/compute/{name}", Region)
    assert m.children("/compute") == []


def test_spawn_refuses_bad_names_before_a_transaction_exists() -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    c = Controller(model, sim).start()
    try:
        nodes = len(model)
        for name in [*BAD, "v" * (MAX_VM_NAME_LENGTH + 1)]:
            with pytest.raises(InvalidArguments, match="argument 'name'"):
                c.submit("spawn_vm", spawn("r1", 1, name))
        assert c.transactions() == [] and len(model) == nodes
        t = c.wait(c.submit("spawn_vm", spawn("r1", 1, "v" * MAX_VM_NAME_LENGTH)), 30)
        assert t.state is State.COMMITTED, t.error
    finally:
        c.stop()


def test_an_action_creating_a_badly_named_resource_aborts_the_transaction() -> None:
    """Another procedure than spawn_vm (one of your own) gets the same rule from the model itself."""
    registry = Registry.of(REGISTRY.procedures[n].fn for n in REGISTRY.names())

    def define_vm(view: View, *, host: str, name: str) -> None:
        """Define a VM without a volume (no Name() annotation: the model still checks)."""
        view.get(host, Host).create_vm(name=name, vcpus=1, memory_mib=64, image="", volume="")

    registry.register(define_vm)
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    c = Controller(model, sim, registry=registry).start()
    try:
        bad = c.wait(c.submit("define_vm", {"host": "/compute/r1/host-01", "name": ".."}), 30)
        assert bad.state is State.ABORTED and bad.error is not None
        assert bad.error["code"] == "invalid_arguments" and "not a valid name" in bad.error["message"]
        assert model.children("/compute/r1/host-01") == []
        good = c.wait(c.submit("define_vm", {"host": "/compute/r1/host-01", "name": "fine"}), 30)
        assert good.state is State.COMMITTED, good.error
    finally:
        c.stop()


def test_a_resource_named_before_the_rule_stays_reachable() -> None:
    """A store written by an older version may hold a name the rule refuses: it can still be read,
    recreated in place by a repair, and destroyed."""
    model = small_dc()
    host = "/compute/r1/host-01"
    legacy = f"{host}/Legacy_VM"
    # As a store restore does: nodes written directly, no rule applied.
    model.nodes[legacy] = Node(VM.kind, VM.initial_attrs({"vcpus": 1, "memory_mib": 64}, legacy))
    model.kids.setdefault(host, set()).add("Legacy_VM")
    model.nodes[host].attrs["configs"] = ["Legacy_VM"]
    check_path(legacy)
    view = model.view()
    h = view.get(host, Host)
    spec = view.get(legacy, VM).snapshot()
    h.delete_vm(name="Legacy_VM")
    h.create_vm(name="Legacy_VM", **spec)  # what the recreate_vm repair does
    assert legacy in {p for p, n in view.overlay.items() if n is not None}
    sim = SimDriver()
    sim.load(project(model))
    c = Controller(model, sim).start()
    try:
        t = c.wait(c.submit("destroy_vm", {"vm": legacy}), 30)
        assert t.state is State.COMMITTED, t.error
        assert legacy not in model
    finally:
        c.stop()


def test_a_name_rule_is_declared_on_string_arguments_only() -> None:
    def bad(view: View, *, count: Annotated[int, Name()]) -> None:
        """Not a name."""

    with pytest.raises(TypeError, match="must be str"):
        Registry().register(bad)


def test_reload_does_not_adopt_a_device_resource_whose_name_breaks_the_rule() -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    host = "/compute/r1/host-02"
    with sim._lock:
        sim.hosts[host]["vms"]["Admin_VM"] = {
            "vcpus": 1,
            "memory_mib": 64,
            "image": "",
            "volume": "",
            "state": "running",
        }
        sim.hosts[host]["configs"].add("Admin_VM")
    c = Controller(model, sim).start()
    rec = Reconciler(c)
    try:
        result = rec.reload(host)
        assert f"{host}/Admin_VM" not in model
        skipped = {d.path: d.note for d in result.skipped}
        assert "not a valid name" in (skipped.get(f"{host}/Admin_VM") or ""), result.to_dict()
    finally:
        rec.close()
        c.stop()


def test_the_generated_datacenters_follow_the_rule() -> None:
    """What `tropic serve`, the benchmarks and the replays build (the replay builds through Model.add)."""
    from tropic.replay.datacenter import HostProfile, build_replay_datacenter
    from tropic.replay.scale import build_scale_model
    from tropic.scenario import build_datacenter

    models = (build_datacenter(), build_scale_model(4, 8), build_replay_datacenter(3, HostProfile())[0])
    for m in models:
        for path, _ in m.walk():
            assert path == "/" or name_error(path.rsplit("/", 1)[1]) is None, path
