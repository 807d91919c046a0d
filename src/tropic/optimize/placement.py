"""Declarative VM placement: hosts, VMs, hard constraints and an objective, as plain data.

Decision: which host runs each VM. Hard constraints: host capacity (always), :class:`AntiAffinity` (at most
``k`` VMs of a group per host), :class:`Spread` (at most ``k`` VMs of a group per region or failure domain)
and :class:`RegionLimit` (at most so many VMs or active hosts in a region). Objective: minimise
``host_cost * hosts used + migration_cost * VMs moved off their current host``.

:func:`check_placement` and :func:`placement_cost` are the reference semantics, computed from scratch;
solvers and heuristics are tested against them.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from tropic.errors import InvalidArguments
from tropic.optimize.base import SolveStatus


@dataclass(frozen=True)
class Host:
    """A compute host: ``path`` is its logical-model path (e.g. ``/compute/r1/h1``)."""

    path: str
    vcpus: int
    memory_mib: int
    region: str = "default"
    failure_domain: str = ""  # e.g. the rack; empty means the host is a failure domain of its own

    @property
    def domain(self) -> str:
        return self.failure_domain or self.path


@dataclass(frozen=True)
class VM:
    """A VM to place: ``host`` is its current host path, ``None`` for a VM not created yet."""

    name: str
    vcpus: int
    memory_mib: int
    host: str | None = None
    image: str = ""


class Level(enum.Enum):
    """Where :class:`Spread` counts VMs."""

    HOST = "host"
    FAILURE_DOMAIN = "failure_domain"
    REGION = "region"

    def domain_of(self, host: Host) -> str:
        if self is Level.HOST:
            return host.path
        if self is Level.FAILURE_DOMAIN:
            return host.domain
        return host.region


@dataclass(frozen=True)
class AntiAffinity:
    """At most ``max_per_host`` of ``vms`` on any one host."""

    vms: tuple[str, ...]
    max_per_host: int = 1

    @property
    def level(self) -> Level:
        return Level.HOST

    @property
    def cap(self) -> int:
        return self.max_per_host


@dataclass(frozen=True)
class Spread:
    """At most ``max_per_domain`` of ``vms`` in any one region or failure domain (``level``)."""

    vms: tuple[str, ...]
    level: Level
    max_per_domain: int

    @property
    def cap(self) -> int:
        return self.max_per_domain


@dataclass(frozen=True)
class RegionLimit:
    """At most ``max_vms`` VMs and at most ``max_hosts`` active hosts in ``region`` (``None``: no limit)."""

    region: str
    max_vms: int | None = None
    max_hosts: int | None = None


GroupConstraint = AntiAffinity | Spread
PlacementConstraint = AntiAffinity | Spread | RegionLimit


@dataclass(frozen=True)
class PlacementObjective:
    """Minimise ``host_cost * hosts used + migration_cost * migrations``.

    The defaults free a host only when that needs fewer than 10 migrations.
    """

    host_cost: int = 10
    migration_cost: int = 1

    def value(self, hosts_used: int, migrations: int) -> int:
        return self.host_cost * hosts_used + self.migration_cost * migrations


@dataclass(frozen=True)
class PlacementProblem:
    """Place every VM of ``vms`` on one of ``hosts`` under ``constraints``, minimising ``objective``."""

    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    constraints: tuple[PlacementConstraint, ...] = ()
    objective: PlacementObjective = field(default_factory=PlacementObjective)

    def __post_init__(self) -> None:
        host_paths = [h.path for h in self.hosts]
        if len(set(host_paths)) != len(host_paths):
            raise InvalidArguments("host paths must be unique")
        names = [v.name for v in self.vms]
        if len(set(names)) != len(names):
            dup = next(n for n, c in Counter(names).items() if c > 1)
            raise InvalidArguments(f"VM names must be unique: {dup!r} appears twice", path=dup)
        known = set(host_paths)
        for h in self.hosts:
            if h.vcpus < 0 or h.memory_mib < 0:
                raise InvalidArguments(f"host {h.path}: capacity must not be negative", path=h.path)
        for v in self.vms:
            if v.vcpus <= 0 or v.memory_mib <= 0:
                raise InvalidArguments(f"VM {v.name}: vcpus and memory must be positive", path=v.name)
            if v.host is not None and v.host not in known:
                raise InvalidArguments(f"VM {v.name}: current host {v.host} is unknown", path=v.name)
        vm_names = set(names)
        for c in self.constraints:
            if isinstance(c, RegionLimit):
                for limit in (c.max_vms, c.max_hosts):
                    if limit is not None and limit < 0:
                        raise InvalidArguments(f"region limit for {c.region} must not be negative")
                continue
            if c.cap < 1:
                raise InvalidArguments(f"{type(c).__name__} needs a cap of at least 1, got {c.cap}")
            for n in c.vms:
                if n not in vm_names:
                    raise InvalidArguments(f"{type(c).__name__} names unknown VM {n!r}", path=n)
        if self.objective.host_cost < 0 or self.objective.migration_cost < 0:
            raise InvalidArguments("objective weights must not be negative")

    def host(self, path: str) -> Host:
        for h in self.hosts:
            if h.path == path:
                return h
        raise InvalidArguments(f"unknown host {path}", path=path)

    @property
    def current(self) -> dict[str, str]:
        """The current assignment of the VMs that already run somewhere."""
        return {v.name: v.host for v in self.vms if v.host is not None}


def check_placement(problem: PlacementProblem, assignment: Mapping[str, str]) -> list[str]:
    """Every constraint ``assignment`` (VM name -> host path) violates, as messages naming the resource."""
    out: list[str] = []
    hosts = {h.path: h for h in problem.hosts}
    vms = {v.name: v for v in problem.vms}
    for name in vms:
        if name not in assignment:
            out.append(f"VM {name} is not placed")
    for name, path in assignment.items():
        if name not in vms:
            out.append(f"unknown VM {name}")
        if path not in hosts:
            out.append(f"VM {name} is on unknown host {path}")
    placed = {n: hosts[p] for n, p in assignment.items() if n in vms and p in hosts}
    cpu: Counter[str] = Counter()
    mem: Counter[str] = Counter()
    for name, host in placed.items():
        cpu[host.path] += vms[name].vcpus
        mem[host.path] += vms[name].memory_mib
    for path, host in hosts.items():
        if cpu[path] > host.vcpus:
            out.append(f"host {path}: {cpu[path]} vCPUs > capacity {host.vcpus}")
        if mem[path] > host.memory_mib:
            out.append(f"host {path}: {mem[path]} MiB > capacity {host.memory_mib}")
    for c in problem.constraints:
        if isinstance(c, RegionLimit):
            in_region = [n for n, h in placed.items() if h.region == c.region]
            active = {placed[n].path for n in in_region}
            if c.max_vms is not None and len(in_region) > c.max_vms:
                out.append(f"region {c.region}: {len(in_region)} VMs > limit {c.max_vms}")
            if c.max_hosts is not None and len(active) > c.max_hosts:
                out.append(f"region {c.region}: {len(active)} active hosts > limit {c.max_hosts}")
            continue
        counts = Counter(c.level.domain_of(placed[n]) for n in c.vms if n in placed)
        for domain, count in sorted(counts.items()):
            if count > c.cap:
                out.append(
                    f"{type(c).__name__}: {count} VMs of group {c.vms[0]}.. in {c.level.value} {domain} "
                    f"> {c.cap}"
                )
    return out


def placement_cost(problem: PlacementProblem, assignment: Mapping[str, str]) -> tuple[int, int, int]:
    """``(hosts used, migrations, objective)`` of ``assignment``."""
    hosts_used = len(set(assignment.values()))
    migrations = sum(1 for v in problem.vms if v.host is not None and assignment.get(v.name) != v.host)
    return hosts_used, migrations, problem.objective.value(hosts_used, migrations)


@dataclass(frozen=True)
class Placement:
    """A solver's answer: ``assignment`` maps every VM name to a host path."""

    assignment: Mapping[str, str]
    status: SolveStatus
    hosts_used: int
    migrations: int
    objective: int
    lower_bound: int  # on hosts used
    solve_s: float
    method: str

    @property
    def gap_to_bound(self) -> float:
        """``(hosts used - lower bound) / lower bound`` (0 when the bound is 0)."""
        return (self.hosts_used - self.lower_bound) / self.lower_bound if self.lower_bound else 0.0
