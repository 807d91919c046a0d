"""Follow the sun on an embedded controller: the regions of a latency matrix as a world of hosts, a
replicated service whose members are placed as a :class:`~tropic.sun.contract.Placement`, and
:meth:`SunWorld.actuate`, the hook of :func:`tropic.sun.strategies.dynamic` that turns each change of
placement into ``migrate_member`` transactions (so every move of the dynamic strategy is simulated,
constraint-checked, locked, logged and undone like any other transaction).

The world: per region (its name and location the matrix's key), ``capacity`` hosts each sized for one
member, and a storage host; the members' image is a catalog image published in the first region (each
region gets its replica on its first member, through the image store); ``/links`` from the matrix.
A change of placement is a list of moves (source region -> destination region); each is one transaction.
When one is refused (no host free, a constraint) or fails, the moves of that change already made are
moved back, each by a transaction too, and ``actuate`` answers False: the service stays where it was.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tropic.drivers import SimDriver
from tropic.errors import ConfigError
from tropic.model import STANDARD, VM, ComputeRoot, Host, Model, Region, StorageHost, StorageRoot, project
from tropic.model.geo import Host as GeoHost
from tropic.sun.contract import LatencyMatrix, Placement
from tropic.txn import Controller, State, Transaction

SERVICE = "sun"
IMAGE = "member"


@dataclass(frozen=True, slots=True)
class Move:
    """One member move the world ran: its transaction and the pre-copy figures it logged."""

    step: int
    txn: int
    member: str
    source: str
    dest: str
    committed: bool
    transfer_s: float = 0.0
    downtime_s: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def build_world(matrix: LatencyMatrix, *, capacity: int, memory_mib: int, vcpus: int) -> Model:
    """The model: every region of ``matrix`` with ``capacity`` hosts sized for one member each."""
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    for r in matrix.regions:
        m.add(f"/compute/{r}", Region, location=r)
        for i in range(1, capacity + 1):
            m.add(f"/compute/{r}/host-{i:02d}", Host, cpus=vcpus, memory_mib=memory_mib, cpu_overcommit=1.0)
        m.add(f"/storage/{r}", Region, location=r)
        m.add(f"/storage/{r}/san-1", StorageHost)
    return m


@dataclass
class SunWorld:
    """An embedded controller running a replicated service over the regions of ``matrix``."""

    matrix: LatencyMatrix
    capacity: int = 1
    memory_mib: int = 4096
    vcpus: int = 2
    dirty_mib_s: float = 20.0
    image_mib: int = 2048
    timeout_s: float = 120.0
    moves: list[Move] = field(default_factory=list)
    controller: Controller | None = None
    sim: SimDriver | None = None

    def start(self, placement: Placement) -> SunWorld:
        """Build the world and spawn one member per entry of ``placement`` (member ``m<i>`` in region
        ``placement.members[i]``)."""
        if self.capacity < 1:
            raise ConfigError("capacity must be >= 1 host per region")
        model = build_world(self.matrix, capacity=self.capacity, memory_mib=self.memory_mib, vcpus=self.vcpus)
        self.sim = SimDriver()
        self.sim.load(project(model))
        self.controller = Controller(model, self.sim, workers=2).start()
        first = self.matrix.regions[0]
        rtt = {a: dict(row) for a, row in self.matrix.rtt_ms.items()}
        self._ok("set_links", {"rtt_json": json.dumps({"data": rtt})})
        self._ok("create_image", {"name": IMAGE, "region": first})
        self._ok("open_image_write", {"image": IMAGE, "region": first, "session": "world"})
        self._ok(
            "close_image_write",
            {"image": IMAGE, "session": "world", "digest": "sha256:world", "size_mib": self.image_mib},
        )
        self._ok(
            "create_replicated_service",
            {
                "name": SERVICE,
                "image": f"/images/{IMAGE}",
                "vcpus": self.vcpus,
                "memory_mib": self.memory_mib,
                "spread": "none",
                "dirty_mib_s": self.dirty_mib_s,
                "max_members": max(10, len(placement.members)),
            },
        )
        for i, region in enumerate(placement.members):
            host = self._free_host(region)
            self._ok("spawn_member", {"service": SERVICE, "name": f"m{i}", "host": host})
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    # --- the hook --------------------------------------------------------------------------------------
    def actuate(self, step: int, current: Placement, target: Placement) -> bool:
        """Turn ``current`` into ``target`` (counts per region) by ``migrate_member`` transactions; False
        (and the service back where it was) when one of them does not commit."""
        made: list[tuple[str, str, str]] = []  # (member, source, dest)
        for source, dest in _moves(current, target):
            member = self._member_in(source, exclude={m for m, _, _ in made})
            t = self._migrate(member, dest)
            move = _move_of(step, t, member, source, dest)
            self.moves.append(move)
            if not move.committed:
                for m, s, _ in reversed(made):
                    back = self._migrate(m, s)
                    self.moves.append(_move_of(step, back, m, "", s))
                return False
            made.append((member, source, dest))
        return True

    def regions(self) -> Counter[str]:
        """Members per region, as the model holds them."""
        return Counter(self._where().values())

    # --- helpers ---------------------------------------------------------------------------------------
    def _ctl(self) -> Controller:
        if self.controller is None:
            raise ConfigError("the world is not started")
        return self.controller

    def _ok(self, procedure: str, args: dict[str, Any]) -> Transaction:
        t = self._ctl().wait(self._ctl().submit(procedure, args), self.timeout_s)
        if t.state is not State.COMMITTED:
            raise ConfigError(f"{procedure} did not commit: {t.error or t.violation}")
        return t

    def _migrate(self, member: str, region: str) -> Transaction:
        c = self._ctl()
        args = {"service": SERVICE, "member": member, "region": region}
        return c.wait(c.submit("migrate_member", args), self.timeout_s)

    def _where(self) -> dict[str, str]:
        """Member name -> region, read from the model."""
        c = self._ctl()

        def read() -> dict[str, str]:
            view = c.model.reader()
            out: dict[str, str] = {}
            for r in self.matrix.regions:
                for h in view.get(f"/compute/{r}", Region).children(GeoHost):
                    for vm in h.children(VM):
                        out[vm.name] = r
            return out

        return c.call(read)

    def _member_in(self, region: str, exclude: set[str]) -> str:
        for name, r in sorted(self._where().items()):
            if r == region and name not in exclude:
                return name
        raise ConfigError(f"no member of {SERVICE} in {region} to move")

    def _free_host(self, region: str) -> str:
        c = self._ctl()

        def read() -> str:
            view = c.model.reader()
            for h in view.get(f"/compute/{region}", Region).children(GeoHost):
                if not any(True for _ in h.children(VM)):
                    return h.path
            raise ConfigError(
                f"region {region} has no free host for another member (capacity {self.capacity})"
            )

        return c.call(read)


def _moves(old: Placement, new: Placement) -> list[tuple[str, str]]:
    """The member moves turning ``old`` into ``new`` (counts per region), sources and destinations in
    region order."""
    a, b = Counter(old.members), Counter(new.members)
    out_ = [r for r in sorted(a) for _ in range(a[r] - b.get(r, 0))]
    in_ = [r for r in sorted(b) for _ in range(b[r] - a.get(r, 0))]
    return list(zip(out_, in_, strict=True))


def _move_of(step: int, t: Transaction, member: str, source: str, dest: str) -> Move:
    live = next((a for a in t.actions if a.action == "live_migrate"), None)
    args = live.args if live is not None else {}
    error = "" if t.error is None else str(t.error.get("message", t.error))
    if t.violation is not None:
        error = f"{t.violation.constraint}: {t.violation.message}"
    return Move(
        step,
        t.id,
        member,
        source,
        dest,
        t.state is State.COMMITTED,
        float(args.get("transfer_s", 0.0)),
        float(args.get("downtime_s", 0.0)),
        error,
    )
