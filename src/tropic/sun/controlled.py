"""The dynamic strategy's moves as transactions: an embedded controller (memory store, sim driver) holds
a model of the matrix's regions (one host each, room for ``capacity`` members), the latency matrix as
its ``/links``, a catalog image and a replicated service whose members start where the dynamic day
starts. Each member move the planner decides is one ``migrate_member`` transaction (reserve, image and
volume present, pre-copy, switch the address, release the source: see ``docs/geo.md``); a transaction
the controller refuses or rolls back leaves the member where it was, and the day goes on from the
placement the controller committed. A leader change is not a transaction (the ensemble elects it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tropic.drivers.sim import SimDriver
from tropic.errors import TropicError
from tropic.model import VM, Model, project
from tropic.model.generate import DatacenterSpec, build_datacenter, host_path
from tropic.records.states import State
from tropic.sun.contract import LatencyMatrix, Placement
from tropic.sun.planner import SunConfig, moves_between
from tropic.txn.controller import Controller

SERVICE = "sun"
IMAGE = "sun-image"
SUBMITTER = "sun"


def _vcpus(config: SunConfig) -> int:
    return 2


@dataclass
class ControlledService:
    """The embedded controller and the service's members (name -> region), as the controller committed."""

    matrix: LatencyMatrix
    config: SunConfig
    controller: Controller
    members: dict[str, str] = field(default_factory=dict)
    transactions: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        matrix: LatencyMatrix,
        config: SunConfig,
        initial: Placement,
        *,
        host_memory_mib: int | None = None,
    ) -> ControlledService:
        memory = host_memory_mib or int(config.capacity * config.memory_mib + config.memory_mib)
        model: Model = build_datacenter(
            DatacenterSpec(regions=matrix.regions, hosts_per_region=1, host_memory_mib=memory, host_cpus=64)
        )
        sim = SimDriver()
        sim.load(project(model))
        ctl = Controller(model, sim, workers=2).start()
        svc = cls(matrix, config, ctl)
        try:
            links = {"bandwidth_mib_s": config.bandwidth_mib_s, "window_mib": config.window_mib}
            svc._ok("set_links", {"rtt_json": json.dumps({"data": matrix.rtt_ms}), **links})
            home = initial.members[initial.leader]
            svc._ok("create_image", {"name": IMAGE, "region": home})
            svc._ok("open_image_write", {"image": IMAGE, "region": home, "session": "sun"})
            svc._ok(
                "close_image_write",
                {"image": IMAGE, "session": "sun", "digest": "sha256:sun", "size_mib": 1024},
            )
            svc._ok(
                "create_replicated_service",
                {
                    "name": SERVICE,
                    "image": f"/images/{IMAGE}",
                    "vcpus": _vcpus(config),
                    "memory_mib": int(config.memory_mib),
                    "spread": "none",
                    "dirty_mib_s": config.dirty_mib_s,
                    "max_members": max(config.members, 1),
                },
            )
            for i, region in enumerate(initial.members):
                name = f"m{i + 1}"
                svc._ok("spawn_member", {"service": SERVICE, "name": name, "host": host_path(region, 1)})
                svc.members[name] = region
        except BaseException:
            ctl.stop()
            raise
        return svc

    def _run(self, procedure: str, args: dict[str, Any]) -> State:
        t = self.controller.wait(self.controller.submit(procedure, args, submitter=SUBMITTER), 120.0)
        self.transactions += 1
        if t.state is not State.COMMITTED:
            self.errors.append(f"{procedure} {args}: {t.state.value}: {t.error or t.violation}")
        return t.state

    def _ok(self, procedure: str, args: dict[str, Any]) -> None:
        if self._run(procedure, args) is not State.COMMITTED:
            raise TropicError(f"sun: setting up the controlled service failed: {self.errors[-1]}")

    def committed_regions(self) -> dict[str, str]:
        """Member name -> region, read from the controller's model."""

        def read() -> dict[str, str]:
            out: dict[str, str] = {}
            for path, node in self.controller.model.nodes.items():
                if node.kind == VM.kind and path.rsplit("/", 1)[1] in self.members:
                    out[path.rsplit("/", 1)[1]] = path.split("/")[2]
            return out

        return dict(self.controller.call(read))

    def actuate(self, step: int, current: Placement, target: Placement) -> Placement:
        """Run the moves from ``current`` to ``target`` one member at a time; the placement reached."""
        for src, dst in moves_between(current, target):
            name = next(n for n, r in sorted(self.members.items()) if r == src)
            if (
                self._run("migrate_member", {"service": SERVICE, "member": name, "region": dst})
                is State.COMMITTED
            ):
                self.members[name] = dst
            else:
                self.refused += 1
        reached = sorted(self.members.values())
        want_leader = target.members[target.leader]
        lead = want_leader if want_leader in reached else current.members[current.leader]
        rest = list(reached)
        rest.remove(lead)
        return Placement((lead, *rest), 0)

    def stop(self) -> None:
        self.controller.stop()
