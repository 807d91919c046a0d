"""A three-region world for the follow-the-sun tests: a catalog image ``zk`` published in r1, the links
between the regions, and a replicated service ``zk`` with members m1 (on r1's host-01) and m2 (r2's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.helpers import small_dc
from tropic.drivers import SimDriver
from tropic.model import VM, Model, project
from tropic.model.generate import host_path
from tropic.model.geo import OVERLAY, Address, AddressGroup
from tropic.txn import Controller, State, Transaction

REGIONS = ("r1", "r2", "r3")
RTT = {
    "r1": {"r1": 1, "r2": 80, "r3": 200},
    "r2": {"r1": 80, "r2": 1, "r3": 120},
    "r3": {"r1": 200, "r2": 120, "r3": 1},
}
SVC = "/services/zk"
GROUP = f"{OVERLAY}/zk"


def run(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    return c.wait(c.submit(procedure, args), 60)


def ok(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    t = run(c, procedure, args)
    assert t.state is State.COMMITTED, (procedure, t.error, t.violation)
    return t


def world_model() -> Model:
    return small_dc(hosts=2, memory_mib=16384, regions=REGIONS)


@dataclass
class World:
    ctl: Controller
    sim: SimDriver

    def read(self, fn: Any) -> Any:
        return self.ctl.call(lambda: fn(self.ctl.model.reader()))

    def vm_path(self, name: str) -> str:
        def find(view: Any) -> str:
            for region in REGIONS:
                for i in (1, 2):
                    p = f"{host_path(region, i)}/{name}"
                    if view.exists(p):
                        return p
            raise AssertionError(f"no VM {name}")

        return str(self.read(find))

    def addresses(self) -> dict[str, tuple[str, str]]:
        """address path -> (ip, vm path) in the model."""
        return dict(
            self.read(lambda v: {a.path: (a.ip, a.vm) for a in v.get(GROUP, AddressGroup).children(Address)})
        )

    def uid(self, name: str) -> str:
        path = self.vm_path(name)
        return str(self.read(lambda v: v.get(path, VM).uid))


def build(ctl: Controller, sim: SimDriver, *, members: bool = True) -> World:
    ok(ctl, "set_links", {"rtt_json": json.dumps({"data": RTT})})
    ok(ctl, "create_image", {"name": "zk", "region": "r1"})
    ok(ctl, "open_image_write", {"image": "zk", "region": "r1", "session": "build"})
    ok(ctl, "close_image_write", {"image": "zk", "session": "build", "digest": "sha256:01", "size_mib": 2048})
    ok(
        ctl,
        "create_replicated_service",
        {"name": "zk", "image": "/images/zk", "vcpus": 2, "memory_mib": 4096},
    )
    if members:
        ok(ctl, "spawn_member", {"service": "zk", "name": "m1", "host": host_path("r1", 1)})
        ok(ctl, "spawn_member", {"service": "zk", "name": "m2", "host": host_path("r2", 1)})
    return World(ctl, sim)


def start(model: Model | None = None) -> tuple[Controller, SimDriver]:
    m = model or world_model()
    sim = SimDriver(seed=3)
    sim.load(project(m))
    return Controller(m, sim, workers=2).start(), sim
