"""Rebuilding a dead host's VM through the controller on every driver (``sim`` and libvirt's
``test:///default``): the destination's devices hold the VM defined from its volume, a failed step leaves
no domain or import there, and once the host is back a repair removes its stale domain.

The sim's host loses power (``fail_host``). libvirt's test hypervisor always answers, so its host's
death is its liveness answer turned to False for the test (the driver's only input to the device check);
every device step runs on libvirt."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.kit import H1, H2, IMG, SAN, World, fail_step
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.model.inventory import without
from tropic.reconcile import Reconciler
from tropic.txn import Controller, State, Transaction


def run(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def ok(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    t = run(c, procedure, args)
    assert t.state is State.COMMITTED, t.error
    return t


def kill_host(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(world.driver, SimDriver):
        world.driver.fail_host(H1)
    else:
        answers = world.driver.host_alive
        monkeypatch.setattr(world.driver, "host_alive", lambda h: False if h == H1 else answers(h))
    assert world.driver.host_alive(H1) is False


def consistent_outside(c: Controller, dead: str) -> None:
    assert without(project(c.model), {dead}) == without(c.driver.inventory(), {dead})


@pytest.mark.parametrize("after", [False, True], ids=["before-effect", "after-effect"])
def test_rebuild_through_the_controller_and_rollback_of_a_failed_step(
    world: World, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    vol = f"{SAN}/vol-web-1"
    with Controller(world.model, world.driver, workers=4) as c:
        args = {"host": H1, "name": "web-1", "image": f"{SAN}/{IMG}", "vcpus": 2, "memory_mib": 2048}
        ok(c, "spawn_vm", args)
        t = run(c, "declare_host_failed", {"host": H1})
        assert t.state is State.ABORTED and "answers" in t.error["message"]  # type: ignore[index]
        kill_host(world, monkeypatch)
        ok(c, "declare_host_failed", {"host": H1})

        fired = fail_step(world.driver, "recreate_vm", after=after)
        t = run(c, "rebuild_vm", {"vm": f"{H1}/web-1", "dest": H2})
        assert fired() == 1 and t.state is State.ABORTED
        assert world.probe.domains(H2) == set() and world.probe.imports(H2) == set()
        consistent_outside(c, H1)
        del world.driver.execute  # type: ignore[attr-defined]  # the device works again

        t = ok(c, "rebuild_vm", {"vm": f"{H1}/web-1", "dest": H2})
        assert world.probe.running(H2) == {"web-1"} and world.probe.imports(H2) == {vol}
        consistent_outside(c, H1)

        # The host comes back with its stale domain: declared recovered, repaired, consistent.
        monkeypatch.undo()
        if isinstance(world.driver, SimDriver):
            world.driver.restore_host(H1)
        ok(c, "declare_host_recovered", {"host": H1})
        repaired = Reconciler(c).repair(H1)
        assert repaired.remaining == [], repaired.remaining
        assert world.probe.domains(H1) == set() and world.probe.imports(H1) == set()
        report = c.check()
        assert report["consistent"], report["differences"]
        assert report["orphans"] == []
