"""Helpers of the reconciliation tests: a small datacenter with a few VMs, on a controller whose device
calls have short deadlines, and the end-of-scenario check that the model equals the devices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core.helpers import small_dc, spawn, vm
from tropic.drivers import SimDriver
from tropic.model import Model, audit, project
from tropic.reconcile import Policies, Reconciler
from tropic.txn import FINAL, Controller, State
from tropic.txn.worker import Deadlines, LocalExecutor

H1 = "/compute/r1/host-01"
H2 = "/compute/r1/host-02"
SAN = "/storage/r1/san-1"
VM_A = vm("r1", 1, "a")
VM_B = vm("r1", 1, "b")
VM_C = vm("r1", 2, "c")
VOL_A = f"{SAN}/vol-a"
VOL_C = f"{SAN}/vol-c"


@dataclass
class World:
    model: Model
    sim: SimDriver
    controller: Controller
    reconciler: Reconciler


def controller(model: Model, sim: SimDriver, *, deadline: float = 30.0) -> Controller:
    """A controller whose device calls (and "did it happen?" probes) have a ``deadline``."""
    executor = LocalExecutor(sim, 4, deadlines=Deadlines(default=deadline, probe=deadline))
    return Controller(model, sim, executor=executor)


def populate(c: Controller) -> None:
    """VMs a and b on host-01, c on host-02 (each with its volume)."""
    for host, name in ((1, "a"), (1, "b"), (2, "c")):
        t = c.wait(c.submit("spawn_vm", spawn("r1", host, name)), 30)
        assert t.state is State.COMMITTED, t.error


@contextmanager
def world(
    *,
    deadline: float = 30.0,
    latency: float = 0.0,
    interval: float = 30.0,
    device_timeout: float = 10.0,
    policies: Policies | None = None,
) -> Iterator[World]:
    """A populated datacenter, its controller (started) and a reconciler (not started)."""
    model = small_dc()
    sim = SimDriver(latency=latency)
    sim.load(project(model))
    c = controller(model, sim, deadline=deadline).start()
    rec = Reconciler(c, interval=interval, device_timeout=device_timeout, policies=policies)
    try:
        populate(c)
        yield World(model, sim, c, rec)
    finally:
        rec.close()
        sim.release(proceed=False)  # wake anything still hanging
        c.stop()


def assert_consistent(w: World) -> None:
    """Every transaction final, no lock held, no constraint violated, nothing fenced (a FAILED
    transaction's leftovers too: repair or reload lifted them), no drift, and the model equals the
    devices exactly."""
    c = w.controller
    assert c.drain(60), "transactions still running after 60 s"
    report = c.check()
    assert all(t.state in FINAL for t in c.transactions())
    assert report["locks_held"] == 0 and report["in_flight"] == 0
    assert report["violations"] == [] and audit(c.model) == []
    assert c.fenced == {}, c.fenced
    assert w.reconciler.drift() == []
    assert project(w.model) == w.sim.inventory()
