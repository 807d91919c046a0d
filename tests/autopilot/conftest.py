"""Fixtures of the autopilot tests: a small datacenter with VMs, built by real transactions on the sim."""

from __future__ import annotations

import pytest

from core.helpers import small_dc, spawn
from tropic.drivers import SimDriver
from tropic.model import Model, project
from tropic.txn import Controller

VMS = [("r1", 1, "a", 2), ("r1", 1, "b", 1), ("r1", 2, "c", 4), ("r2", 1, "d", 1)]


@pytest.fixture
def fleet() -> tuple[Model, SimDriver]:
    """A model with the VMs of :data:`VMS` (region, host, name, vCPUs) and a sim holding the same."""
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    with Controller(model, sim) as c:
        for region, host, name, vcpus in VMS:
            t = c.wait(c.submit("spawn_vm", spawn(region, host, name, vcpus=vcpus)), 60)
            assert t.state.value == "COMMITTED", t.error
        return c.model, sim
