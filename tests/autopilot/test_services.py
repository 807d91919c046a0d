"""Managed services in the model: create a service, spawn and destroy members (VM and member record in one
transaction, both undone together when a step fails), delete the service with its members."""

from __future__ import annotations

from core.helpers import assert_invariants
from tropic.drivers import Fault, SimDriver
from tropic.model import MODEL_ONLY_ACTIONS, STANDARD, VM, Service
from tropic.model.generate import host_path, image_path
from tropic.procedures import REGISTRY
from tropic.txn import Controller, State, Transaction

SVC = "/services/overlay"


def run(c: Controller, procedure: str, args: dict[str, object]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def service(c: Controller) -> Service:
    return c.call(lambda: c.model.reader().get(SVC, Service))


def members(c: Controller) -> list[str]:
    return list(c.call(lambda: list(c.model.reader().get(SVC, Service).members)))


def create(c: Controller, **extra: object) -> Transaction:
    args: dict[str, object] = {"name": "overlay", "image": image_path("r1"), "vcpus": 1, "memory_mib": 1024}
    args.update(extra)
    return run(c, "create_service", args)


def test_the_service_kinds_and_procedures_are_registered() -> None:
    assert {"service_root", "service"} <= set(STANDARD.kinds)
    assert {"add_member", "remove_member", "add_service", "add_service_root"} <= MODEL_ONLY_ACTIONS
    assert "add_member" not in STANDARD.actions()  # no driver needs it
    for name in ("create_service", "delete_service", "spawn_service_member", "destroy_service_member"):
        assert name in REGISTRY.procedures


def test_create_spawn_destroy_delete(ctl: Controller, sim: SimDriver) -> None:
    t = create(ctl, candidates=f"{host_path('r1', 1)},{host_path('r1', 2)}", min_members=1, max_members=2)
    assert t.state is State.COMMITTED, t.error
    assert service(ctl).candidates == [host_path("r1", 1), host_path("r1", 2)]

    t = run(ctl, "spawn_service_member", {"service": "overlay", "name": "m1", "host": host_path("r1", 1)})
    assert t.state is State.COMMITTED, t.error
    assert [a.action for a in t.actions][-1] == "add_member"
    uid = ctl.call(lambda: ctl.model.reader().get(f"{host_path('r1', 1)}/m1", VM).uid)
    assert members(ctl) == [uid]

    # not a candidate: refused in simulation, nothing recorded
    t = run(ctl, "spawn_service_member", {"service": SVC, "name": "m2", "host": host_path("r1", 3)})
    assert t.state is State.ABORTED and "not a candidate" in str(t.error)
    t = run(ctl, "spawn_service_member", {"service": SVC, "name": "m2", "host": host_path("r1", 2)})
    assert t.state is State.COMMITTED, t.error
    t = run(
        ctl, "create_service", {"name": "overlay", "image": image_path("r1"), "vcpus": 1, "memory_mib": 1}
    )
    assert t.state is State.ABORTED and "already exists" in str(t.error)

    t = run(ctl, "destroy_service_member", {"service": SVC, "vm": uid})
    assert t.state is State.COMMITTED, t.error
    assert len(members(ctl)) == 1
    t = run(ctl, "delete_service", {"service": "overlay"})
    assert t.state is State.COMMITTED, t.error
    assert ctl.call(lambda: not ctl.model.reader().exists(SVC))
    assert ctl.call(lambda: not ctl.model.reader().exists(f"{host_path('r1', 2)}/m2"))  # its member went too
    assert_invariants(ctl)


def test_max_members_is_a_constraint(ctl: Controller) -> None:
    assert create(ctl, max_members=1).state is State.COMMITTED
    ok = run(ctl, "spawn_service_member", {"service": SVC, "name": "a", "host": host_path("r1", 1)})
    assert ok.state is State.COMMITTED, ok.error
    t = run(ctl, "spawn_service_member", {"service": SVC, "name": "b", "host": host_path("r1", 2)})
    assert t.state is State.ABORTED
    assert t.violation is not None and t.violation.constraint == "Service.members_within_max"
    assert_invariants(ctl)


def test_a_failed_spawn_leaves_no_member_record(ctl: Controller, sim: SimDriver) -> None:
    assert create(ctl).state is State.COMMITTED
    sim.inject(Fault(action="create_vm", times=1))
    t = run(ctl, "spawn_service_member", {"service": SVC, "name": "m1", "host": host_path("r1", 1)})
    assert t.state is State.FAILED or t.state is State.ABORTED, t.state
    assert [s.status for s in t.steps if s.undo]  # the completed steps were undone
    assert members(ctl) == []
    assert_invariants(ctl)


def test_bad_service_definitions_are_refused(ctl: Controller) -> None:
    t = create(ctl, service_kind="nope")
    assert t.state is State.ABORTED and "unknown service kind" in str(t.error)
    t = create(ctl, min_members=3, max_members=2)
    assert t.state is State.ABORTED and "min_members" in str(t.error)
    t = create(ctl, candidates="/compute/r1/nope")
    assert t.state is State.ABORTED
