"""Rebuilding the VMs of a dead host: ``declare_host_failed`` (refused while the host answers) then one
``rebuild_vm`` transaction per VM, which keeps each VM's name, uid, size, image, volume, state, labels
and public address, checks placement in simulation before any device call, undoes every step when one
fails (no orphan on the destination) and is refused on a live host."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.helpers import assert_invariants, small_dc, spawn, vm
from geo.helpers import GROUP, build, start
from tropic.drivers import SimDriver
from tropic.drivers.sim_faults import Fault
from tropic.model import VM, Host, Model, audit, project
from tropic.model.generate import host_path
from tropic.model.inventory import orphans, without
from tropic.reconcile import Reconciler
from tropic.txn import Controller, State, Transaction

H1, H2, H3 = "/compute/r1/host-01", "/compute/r1/host-02", "/compute/r1/host-03"


def run(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    return c.wait(c.submit(procedure, args), 60)


def committed(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    t = run(c, procedure, args)
    assert t.state is State.COMMITTED, t.error
    return t


def vms_of(c: Controller, host: str) -> dict[str, dict[str, Any]]:
    return c.call(lambda: {v.name: v.snapshot() for v in c.model.reader().get(host, Host).vms()})


def host_attrs(c: Controller, host: str) -> dict[str, Any]:
    return c.call(lambda: c.model.reader().get(host, Host).snapshot())


def find(c: Controller, name: str) -> str:
    """The path of the one VM named ``name`` in the model, in any region."""

    def paths() -> list[str]:
        return [p for p, n in c.model.nodes.items() if n.kind == VM.kind and p.endswith(f"/{name}")]

    (path,) = c.call(paths)
    return path


def consistent_outside(c: Controller, dead: str) -> None:
    """Every transaction final, no violation, and the devices equal the model everywhere but on the dead
    host (its device still holds what it held when it died: nobody can read or change it)."""
    assert c.drain(60)
    logical = without(project(c.model), {dead})
    physical = without(c.driver.inventory(), {dead})
    assert logical == physical
    assert orphans(logical, physical) == []
    assert audit(c.model) == []


@pytest.fixture
def dead_h1(ctl: Controller, sim: SimDriver) -> dict[str, dict[str, Any]]:
    """Three VMs on host-01 (one stopped, one labelled), then host-01 loses power."""
    committed(ctl, "spawn_vm", spawn("r1", 1, "web", memory_mib=4096, vcpus=2))
    committed(ctl, "spawn_vm", spawn("r1", 1, "db", memory_mib=2048))
    committed(ctl, "spawn_vm", spawn("r1", 1, "batch", memory_mib=1024))
    committed(ctl, "stop_vm", {"vm": vm("r1", 1, "batch")})
    before = vms_of(ctl, H1)
    sim.fail_host(H1)
    assert sim.host_alive(H1) is False and sim.host_alive(H2) is True
    return before


def test_every_vm_of_a_powered_off_host_is_rebuilt_keeping_its_identity(
    ctl: Controller, sim: SimDriver, dead_h1: dict[str, dict[str, Any]]
) -> None:
    # A live migration from the dead host fails on its device and is rolled back.
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 1, "web")})
    assert t.state is State.ABORTED and "is down" in t.error["message"]  # type: ignore[index]

    committed(ctl, "declare_host_failed", {"host": H1})
    h = host_attrs(ctl, H1)
    assert h["failed"] and h["cordoned"]
    for name in sorted(dead_h1):
        t = committed(ctl, "rebuild_vm", {"vm": vm("r1", 1, name)})
        actions = [a.action for a in t.actions]
        assert actions == ["import_volume", "recreate_vm", "release_vm"]  # the release comes last
    assert vms_of(ctl, H1) == {}
    h = host_attrs(ctl, H1)
    assert h["configs"] == [] and h["volumes"] == [] and h["failed"]
    inv = sim.inventory()["hosts"]
    for name, spec in dead_h1.items():
        path = find(ctl, name)
        host = path.rsplit("/", 1)[0]
        assert host in (H2, H3)
        assert ctl.call(lambda p=path: ctl.model.reader().get(p, VM).snapshot()) == spec  # name, uid, ...
        device = inv[host]
        assert device["vms"][name]["state"] == spec["state"]
        assert spec["volume"] in device["volumes"] and name in device["configs"]
    consistent_outside(ctl, H1)
    # Drift detection over the fleet leaves the failed host out (nothing fenced in the rebuilds' way);
    # naming the host reads it: its device still holds the rebuilt VMs.
    rec = Reconciler(ctl)
    assert [d for d in rec.drift("/") if d.path.startswith(H1)] == [] and ctl.fenced == {}
    assert {d.path for d in rec.drift(H1) if d.attribute == "exists"} == {f"{H1}/{n}" for n in dead_h1}

    # The host comes back: declared recovered, its stale domains repaired away, everything consistent.
    sim.restore_host(H1)
    committed(ctl, "declare_host_recovered", {"host": H1})
    repaired = Reconciler(ctl).repair(H1)
    assert repaired.remaining == [], repaired.remaining
    assert sorted(t["procedure"] for t in repaired.transactions if t["state"] == "COMMITTED").count(
        "remove_orphan_vm"
    ) == len(dead_h1)
    assert sim.inventory()["hosts"][H1]["vms"] == {}
    committed(ctl, "uncordon_host", {"host": H1})
    assert_invariants(ctl)


def test_rebuild_is_refused_on_a_live_host_naming_the_vm_and_host(ctl: Controller, sim: SimDriver) -> None:
    committed(ctl, "spawn_vm", spawn("r1", 1, "web"))
    calls = sim.calls
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web")})
    assert t.state is State.ABORTED and t.error is not None
    msg = t.error["message"]
    assert vm("r1", 1, "web") in msg and H1 in msg and "alive" in msg and "migrate" in msg
    assert sim.calls == calls and t.steps == []
    # Declaring a host failed while its device answers is refused by the device check, and undone.
    t = run(ctl, "declare_host_failed", {"host": H1})
    assert t.state is State.ABORTED and t.error is not None and "answers" in t.error["message"]
    h = host_attrs(ctl, H1)
    assert not h["failed"] and not h["cordoned"]
    assert_invariants(ctl)


@pytest.mark.parametrize(
    ("setup", "dest", "rule"),
    [
        ("cordon", H2, "Host.cordon_respected"),
        ("full", H2, "Host.memory_fits"),
        ("power_off", H3, "Host.powered_off_is_empty"),
    ],
)
def test_a_rule_the_rebuild_would_break_is_refused_before_any_device_call(
    ctl: Controller, sim: SimDriver, dead_h1: dict[str, dict[str, Any]], setup: str, dest: str, rule: str
) -> None:
    if setup == "cordon":
        committed(ctl, "cordon_host", {"host": dest})
    elif setup == "full":
        committed(ctl, "spawn_vm", spawn("r1", 2, "hog", memory_mib=14000))
    else:
        committed(ctl, "power_off_host", {"host": dest})
    committed(ctl, "declare_host_failed", {"host": H1})
    calls = sim.calls
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web"), "dest": dest})
    assert t.state is State.ABORTED and t.violation is not None, t.error
    assert t.violation.constraint == rule and t.steps == []
    assert sim.calls == calls
    assert sorted(vms_of(ctl, H1)) == sorted(dead_h1)


def test_no_host_fits_names_the_failed_host_and_another_failed_host_is_no_destination(
    ctl: Controller, sim: SimDriver, dead_h1: dict[str, dict[str, Any]]
) -> None:
    committed(ctl, "declare_host_failed", {"host": H1})
    sim.fail_host(H2)
    committed(ctl, "declare_host_failed", {"host": H2})
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web"), "dest": H2})
    assert t.state is State.ABORTED and t.error is not None
    assert "declared failed too" in t.error["message"] or t.violation is not None
    committed(ctl, "cordon_host", {"host": H3})
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web")})
    assert t.state is State.ABORTED and t.error is not None
    assert "no host in /compute/r1 other than" in t.error["message"] and "cordoned" in t.error["message"]


@pytest.mark.parametrize("after", [False, True], ids=["before-effect", "after-effect"])
@pytest.mark.parametrize("action", ["import_volume", "recreate_vm"])
def test_a_fault_at_each_step_rolls_back_leaving_no_orphan_on_the_destination(
    ctl: Controller, sim: SimDriver, dead_h1: dict[str, dict[str, Any]], action: str, after: bool
) -> None:
    committed(ctl, "declare_host_failed", {"host": H1})
    before_dest = sim.inventory()["hosts"][H2]
    model_before = project(ctl.model)
    sim.inject(Fault(action=action, times=1, after=after))
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web"), "dest": H2})
    assert t.state is State.ABORTED, (t.state, t.error)
    assert sim.inventory()["hosts"][H2] == before_dest  # no VM, config or volume import left there
    assert project(ctl.model) == model_before
    assert vms_of(ctl, H1) == {k: v for k, v in dead_h1.items()}
    consistent_outside(ctl, H1)
    # The same rebuild then succeeds.
    committed(ctl, "rebuild_vm", {"vm": vm("r1", 1, "web"), "dest": H2})
    assert "web" in sim.inventory()["hosts"][H2]["vms"]


def test_a_replicated_job_replica_is_not_rebuilt(ctl: Controller, sim: SimDriver) -> None:
    def label(m: Model) -> None:
        m.nodes[vm("r1", 1, "rep")].attrs["labels"] = {"job": "kv", "replica": "kv-0"}

    committed(ctl, "spawn_vm", spawn("r1", 1, "rep"))
    ctl.call(lambda: label(ctl.model))
    sim.fail_host(H1)
    committed(ctl, "declare_host_failed", {"host": H1})
    t = run(ctl, "rebuild_vm", {"vm": vm("r1", 1, "rep")})
    assert t.state is State.ABORTED and t.error is not None and "job healer" in t.error["message"]


def test_a_service_member_keeps_its_address_and_its_spread_rule_is_checked() -> None:
    ctl, sim = start()
    try:
        w = build(ctl, sim)
        m1 = w.vm_path("m1")
        dead = m1.rsplit("/", 1)[0]
        uid, ips = w.uid("m1"), {ip for ip, v in w.addresses().values() if v == m1}
        assert len(ips) == 1
        sim.fail_host(dead)
        committed(ctl, "declare_host_failed", {"host": dead})
        # To r2, where m2 runs: the service's spread (one member per region) refuses it in simulation.
        calls = sim.calls
        t = run(ctl, "rebuild_vm", {"vm": m1, "region": "r2"})
        assert t.state is State.ABORTED and t.violation is not None, t.error
        assert t.violation.constraint == "AddressGroup.members_spread" and t.violation.path == GROUP
        assert sim.calls == calls and t.steps == []
        # Within its region it is rebuilt and keeps its uid and its public address.
        t = committed(ctl, "rebuild_vm", {"vm": m1})
        assert "switch_address" in [a.action for a in t.actions]
        new = w.vm_path("m1")
        assert new == f"{host_path('r1', 2)}/m1" and w.uid("m1") == uid
        assert {ip for ip, v in w.addresses().values() if v == new} == ips
        consistent_outside(ctl, dead)
    finally:
        ctl.stop()


@given(
    vms=st.lists(st.sampled_from([512, 2048, 3072]), min_size=1, max_size=5),
    rebuilds=st.lists(
        st.tuples(
            st.integers(0, 4),  # which VM
            st.sampled_from(["", H2, H3, "r2"]),  # no destination, a host, another region
            st.sampled_from([None, "import_volume", "recreate_vm", "switch_address"]),  # a step that fails
            st.booleans(),  # the failure comes after the step's effect
        ),
        max_size=8,
    ),
)
@settings(max_examples=40, deadline=None)
def test_whatever_rebuilds_and_faults_each_vm_exists_once_with_its_identity(
    vms: list[int], rebuilds: list[tuple[int, str, str | None, bool]]
) -> None:
    """Random rebuilds of a dead host's VMs, some failing at a random step: every VM exists exactly once
    with its record (on the dead host while not rebuilt), nothing is left on a destination by a failed
    rebuild, every constraint holds and the devices equal the model outside the dead host."""
    model = small_dc()
    sim = SimDriver(seed=1)
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        for i, mem in enumerate(vms):
            committed(c, "spawn_vm", spawn("r1", 1, f"v{i}", memory_mib=mem))
        specs = vms_of(c, H1)
        sim.fail_host(H1)
        committed(c, "declare_host_failed", {"host": H1})
        for n, dest, fail, after in rebuilds:
            name = f"v{n}"
            if name not in specs:
                continue
            if fail is not None:
                sim.inject(Fault(action=fail, times=1, after=after))
            where = {"dest": dest} if dest.startswith("/") else {"region": dest} if dest else {}
            before = find(c, name)
            t = run(c, "rebuild_vm", {"vm": before, **where})
            sim.faults.clear()
            after = find(c, name)
            if t.state is State.COMMITTED:
                assert before.startswith(H1 + "/") and not after.startswith(H1 + "/")
                assert fail not in ("import_volume", "recreate_vm"), f"a failed {fail} committed"
            else:
                assert t.state is State.ABORTED and after == before, t.error
                if not before.startswith(H1 + "/"):  # rebuilt already: its host is alive
                    assert t.error is not None and "is alive" in t.error["message"]
            consistent_outside(c, H1)
        for name, spec in specs.items():
            path = find(c, name)
            assert c.call(lambda p=path: c.model.reader().get(p, VM).snapshot()) == spec
        released = set(specs) - set(vms_of(c, H1))
        h = host_attrs(c, H1)
        assert set(h["configs"]) == set(specs) - released
        assert audit(c.model) == []
    finally:
        c.stop()


def test_a_failed_host_cannot_be_uncordoned_until_declared_recovered(
    ctl: Controller, sim: SimDriver, dead_h1: dict[str, dict[str, Any]]
) -> None:
    """A failed host stays cordoned, so no spawn naming it explicitly can land there."""
    committed(ctl, "declare_host_failed", {"host": H1})
    t = run(ctl, "uncordon_host", {"host": H1})
    assert t.state is State.ABORTED and t.error is not None
    assert H1 in t.error["message"] and "declared failed" in t.error["message"]
    assert host_attrs(ctl, H1)["cordoned"]
    t = run(ctl, "spawn_vm", spawn("r1", 1, "late"))
    assert t.state is State.ABORTED and t.violation is not None
    assert t.violation.constraint == "Host.cordon_respected"
    sim.restore_host(H1)
    committed(ctl, "declare_host_recovered", {"host": H1})
    committed(ctl, "uncordon_host", {"host": H1})
    assert_invariants(ctl)
