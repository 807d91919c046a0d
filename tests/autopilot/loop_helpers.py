"""A fleet for the loop's tests: a controller on the sim driver, demand per VM *name* (a VM keeps its
load when it moves), stale subjects, and an explicit clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.helpers import spawn
from tropic.autopilot.actuator import ControllerExecutor, Guards
from tropic.autopilot.base import Plan, Snapshot
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.passes import MemoryPassBook
from tropic.autopilot.policies.hotspot import HotspotRelief
from tropic.model import VM, Host
from tropic.records.states import State
from tropic.txn import Controller

H1, H2, H3 = "/compute/r1/host-01", "/compute/r1/host-02", "/compute/r1/host-03"


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


@dataclass
class Fleet:
    ctl: Controller
    load: dict[str, float] = field(default_factory=dict)  # VM name -> predicted cores
    stale: set[str] = field(default_factory=set)
    clock: Clock = field(default_factory=Clock)

    def snapshot(self, at: float) -> Snapshot:
        def read() -> Snapshot:
            names = {
                p: p.rsplit("/", 1)[1]
                for p, n in self.ctl.model.nodes.items()
                if n.kind == VM.kind and p.startswith("/compute/")
            }
            demand = {p: self.load[n] for p, n in names.items() if n in self.load}
            return fleet_snapshot(self.ctl.model, at, demand, frozenset(self.stale))

        return self.ctl.call(read)

    def spawn(self, host: int, name: str, vcpus: int = 2, memory_mib: int = 2048, load: float = 0.0) -> None:
        t = self.ctl.wait(self.ctl.submit("spawn_vm", spawn("r1", host, name, memory_mib, vcpus)), 30)
        assert t.state is State.COMMITTED, t.error
        self.load[name] = load

    def host_of(self, name: str) -> str:
        def find() -> str:
            for p, n in self.ctl.model.nodes.items():
                if n.kind == VM.kind and p.rsplit("/", 1)[1] == name:
                    return p.rsplit("/", 1)[0]
            raise AssertionError(f"no VM {name}")

        return self.ctl.call(find)

    def powered(self, host: str) -> bool:
        return bool(self.ctl.call(lambda: self.ctl.model.reader().get(host, Host).powered))

    def migrations(self) -> list[Any]:
        return [t for t in self.ctl.transactions() if t.procedure == "migrate_vm"]

    def coordinator(self, policy: Any = None, **guards: Any) -> Coordinator:
        return Coordinator(
            self.snapshot,
            [policy or HotspotRelief()],
            ControllerExecutor(self.ctl),
            MemoryPassBook(),
            guards=Guards(**guards),
            interval=3600,
            clock=self.clock,
        )


class Fixed:
    """A policy answering one given plan (to drive the actuator with a plan of the test's choosing)."""

    def __init__(self, plan: Plan) -> None:
        self.name = plan.policy
        self.answer = plan
        self.asked: list[tuple[int, float]] = []

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        self.asked.append((budget, time_limit))
        return self.answer
