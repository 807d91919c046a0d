"""VM identity: a stable uid kept across migrations and undos, names unique within a region (checked in
simulation, with both paths named), procedure arguments that name a VM by path, name, region/name or uid,
and the model's name index kept exact by apply and revert (compared with a full scan)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.helpers import WAIT_S, assert_invariants, small_dc, spawn, until, vm
from tropic.drivers import Fault, SimDriver
from tropic.model import VM, Delta, Model, project
from tropic.model.index import NameIndex, name_key
from tropic.procedures import REGISTRY
from tropic.txn import Controller, State, Transaction
from tropic.txn.simulate import simulate


def run(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def uid_of(c: Controller, path: str) -> str:
    return str(c.call(lambda: c.model.nodes[path].attrs["uid"]))


def scanned(model: Model) -> tuple[dict[str, str | set[str]], dict[str, str], dict[str, list[int]]]:
    fresh = NameIndex.build(model.schema, model.nodes.items())
    return fresh.by_name, fresh.by_uid, fresh.usage


def test_spawn_gives_a_uid_recorded_in_the_action_log_and_kept_by_migration(ctl: Controller) -> None:
    t = run(ctl, "spawn_vm", spawn("r1", 1, "web-1"))
    assert t.state is State.COMMITTED, t.error
    uid = uid_of(ctl, vm("r1", 1, "web-1"))
    assert len(uid) == 36
    create = t.actions[-1]
    assert create.action == "create_vm" and create.args["uid"] == uid
    t = run(ctl, "migrate_vm", {"vm": "web-1", "dest": "/compute/r1/host-02"})
    assert t.state is State.COMMITTED, t.error
    assert uid_of(ctl, vm("r1", 2, "web-1")) == uid
    # the action log shows the path the name resolved to
    assert t.actions[1].action == "migrate" and t.actions[1].path == "/compute/r1/host-01"
    assert ctl.call(lambda: ctl.model.index.by_uid[uid]) == vm("r1", 2, "web-1")
    assert_invariants(ctl)


def test_a_rolled_back_destroy_brings_the_vm_back_with_its_uid(model: Model) -> None:
    sim = SimDriver(seed=1)
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        assert run(c, "spawn_vm", spawn("r1", 1, "db")).state is State.COMMITTED
        uid = uid_of(c, vm("r1", 1, "db"))
        sim.inject(Fault(action="delete_volume", nth=1))
        t = run(c, "destroy_vm", {"vm": uid})
        assert t.state is State.ABORTED, t.error
        assert uid_of(c, vm("r1", 1, "db")) == uid
        assert c.call(lambda: c.model.index.by_uid.get(uid)) == vm("r1", 1, "db")
        assert_invariants(c)
    finally:
        c.stop()


def test_a_second_vm_with_a_name_taken_in_its_region_fails_in_simulation(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "web-1")).state is State.COMMITTED
    t = run(ctl, "spawn_vm", spawn("r1", 2, "web-1"))
    assert t.state is State.ABORTED and t.error is not None
    assert t.error["code"] == "resource_exists"
    assert vm("r1", 1, "web-1") in t.error["message"] and vm("r1", 2, "web-1") in t.error["message"]
    assert t.steps == []
    # another region may use the name
    assert run(ctl, "spawn_vm", spawn("r2", 1, "web-1")).state is State.COMMITTED
    assert_invariants(ctl)


def test_a_migration_into_a_region_where_the_name_is_taken_fails(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "app")).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r2", 1, "app")).state is State.COMMITTED
    t = run(ctl, "migrate_vm", {"vm": "r1/app", "dest": "/compute/r2/host-02"})
    assert t.state is State.ABORTED and t.error is not None
    assert vm("r2", 1, "app") in t.error["message"] and vm("r2", 2, "app") in t.error["message"]
    assert_invariants(ctl)


def test_vm_arguments_accept_a_path_a_name_region_name_or_uid(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "solo")).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r1", 1, "twin")).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r2", 1, "twin")).state is State.COMMITTED
    assert run(ctl, "stop_vm", {"vm": "solo"}).state is State.COMMITTED
    assert run(ctl, "start_vm", {"vm": vm("r1", 1, "solo")}).state is State.COMMITTED
    t = run(ctl, "stop_vm", {"vm": "twin"})
    assert t.state is State.ABORTED and t.error is not None
    assert t.error["code"] == "ambiguous_name"
    assert vm("r1", 1, "twin") in t.error["message"] and vm("r2", 1, "twin") in t.error["message"]
    assert "r1/twin" in t.error["message"]
    t = run(ctl, "stop_vm", {"vm": "r2/twin"})
    assert t.state is State.COMMITTED and t.actions[0].path == vm("r2", 1, "twin")
    uid = uid_of(ctl, vm("r1", 1, "twin"))
    t = run(ctl, "resize_vm", {"vm": uid, "vcpus": 2, "memory_mib": 1024})
    assert t.state is State.COMMITTED and t.actions[0].path == vm("r1", 1, "twin")
    for bad, code in (
        ("ghost", "unknown_resource"),
        ("r3/solo", "unknown_resource"),
        ("a/b/c", "invalid_arguments"),
    ):
        t = run(ctl, "stop_vm", {"vm": bad})
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == code, (bad, t.error)
    t = run(ctl, "destroy_vm", {"vm": "r1/solo"})
    assert t.state is State.COMMITTED
    assert run(ctl, "stop_vm", {"vm": "solo"}).state is State.ABORTED
    assert_invariants(ctl)


def test_plan_with_a_name_shows_the_resolved_paths() -> None:
    model = small_dc()
    view = model.view()
    REGISTRY.get("spawn_vm").run(view, spawn("r1", 1, "web-1"))
    model.apply(view)
    sim = simulate(model, REGISTRY.get("migrate_vm"), {"vm": "web-1", "dest": "/compute/r1/host-03"})
    assert sim.ok, sim.error
    assert [a.path for a in sim.actions] == [
        "/compute/r1/host-03",
        "/compute/r1/host-01",
        "/compute/r1/host-01",
    ]
    # the name key is locked, so a concurrent change of who holds the name conflicts
    assert name_key(vm("r1", 1, "web-1"), 2) == "/compute/r1/#web-1"
    assert "/compute/r1/#web-1" in sim.locks().writes


def test_a_migration_waits_for_a_running_destroy_of_the_same_name_in_the_region() -> None:
    """The migration and the destroy share no resource, only the name: its key makes them conflict, so
    the migration does not take a name that the destroy's rollback gives back."""
    model = small_dc()
    sim = SimDriver(seed=1)
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        assert run(c, "spawn_vm", spawn("r1", 1, "x")).state is State.COMMITTED
        assert run(c, "spawn_vm", spawn("r2", 1, "x")).state is State.COMMITTED
        held = sim.hang("/compute/r2/host-01", action="delete_vm", timeout=120)
        destroy = c.submit("destroy_vm", {"vm": "r2/x"})
        assert held.entered.wait(WAIT_S), "the destroy never reached delete_vm"
        move = c.submit("migrate_vm", {"vm": "r1/x", "dest": "/compute/r2/host-02"})
        until(lambda: move.state is State.DEFERRED, "the migration deferred behind the destroy")
        sim.release(held, proceed=False)
        assert c.wait(destroy, 30).state is State.ABORTED
        t = c.wait(move, 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["code"] == "resource_exists"
        assert_invariants(c)
    finally:
        c.stop()


OPS = st.lists(
    st.tuples(
        st.sampled_from(["spawn", "destroy", "migrate", "revert"]),
        st.sampled_from(["r1", "r2"]),
        st.integers(1, 3),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_name_index_matches_a_full_scan_after_any_apply_and_revert(
    ops: list[tuple[str, str, int, str]],
) -> None:
    model = small_dc()
    assert model.index.by_name == {}  # built, and from now on maintained
    deltas: list[Delta] = []
    for op, region, host, name in ops:
        if op == "revert":
            if deltas:
                model.revert(deltas.pop())
            continue
        if op == "spawn":
            proc, args = "spawn_vm", spawn(region, host, name, memory_mib=256)
        elif op == "destroy":
            proc, args = "destroy_vm", {"vm": f"{region}/{name}"}
        else:
            proc, args = "migrate_vm", {"vm": f"{region}/{name}", "dest": f"/compute/{region}/host-0{host}"}
        s = simulate(model, REGISTRY.get(proc), args)
        if s.ok:
            deltas.append(model.apply(s.view))
        assert (model.index.by_name, model.index.by_uid, model.index.usage) == scanned(model)
        for name in model.index.by_name:
            regions = [p.split("/")[2] for p in model.index.paths(name)]
            assert len(regions) == len(set(regions))  # unique within a region
    for path, node in model.nodes.items():
        if node.kind == VM.kind:
            assert model.index.by_uid[node.attrs["uid"]] == path
        if node.kind == "host":
            vms = [model.nodes[p] for p in model.children(path)]
            used = (sum(v.attrs["vcpus"] for v in vms), sum(v.attrs["memory_mib"] for v in vms), len(vms))
            assert model.index.used(path) == used
