"""The autopilot's contract: what sensors report, what a policy sees, and what it answers.

* A **sensor** yields :class:`Observation`\\ s (a subject's metric at a time); the knowledge base keeps
  them as bounded time series in the controller's store.
* A pass turns the committed model and the predicted load into a :class:`Snapshot`: hosts and VMs as
  plain data, each VM's predicted CPU demand, and the subjects whose sensors are stale (a stale sensor is
  unknown, never 0%: policies leave those hosts and VMs alone).
* A :class:`Policy` answers a :class:`Plan`: the target configuration as moves, spawns, destroys and
  host power changes (and image versions to collect), with the predicted gain and the migration cost in
  the same unit, and why. The actuator turns the plan into transactions (each checked by the transaction
  layer) under its guards.

Units: CPU demand and capacity in **cores** (a VM's predicted utilisation x its vCPUs; a host's ``cpus``),
memory in MiB. Plain, immutable data, so policies are pure functions, testable offline and replayable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tropic.errors import TropicError

CPU = "cpu"  # fraction of the subject's CPUs in use, 0..1 (a VM: of its vCPUs; a host: of its cpus)
MEMORY = "memory"  # fraction of the subject's memory in use, 0..1


class PolicyError(TropicError):
    """A policy could not answer (bad configuration, impossible headroom). The current configuration
    stays as it is; the pass records why."""

    code = "policy_error"


@dataclass(frozen=True, slots=True)
class Observation:
    """One reading: ``subject`` (a resource path, or a key such as ``region:us-east``), ``metric``
    (``cpu``, ``memory``, ``demand``, ``latency_ms``, ``price``...), ``value`` at ``at`` (Unix seconds),
    read by ``source`` (the sensor's name)."""

    subject: str
    metric: str
    value: float
    at: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class VMState:
    path: str
    host: str  # the host's path
    vcpus: int
    memory_mib: int
    uid: str = ""
    demand: float | None = None  # predicted CPU demand in cores; None: unknown (stale or no reading)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HostState:
    path: str
    region: str
    cpus: int
    memory_mib: int
    cpu_overcommit: float = 4.0
    failure_domain: str = ""
    cordoned: bool = False
    powered: bool = True
    driver: str = ""
    vms: tuple[str, ...] = ()  # paths of its VMs
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceState:
    """A managed service (``/services/<name>``, see ``tropic.model.services``): its kind, its members'
    image and size, where members may run (``candidates``: host paths, empty: every host of ``region``,
    or of every region), its member bounds, and its members (VM paths)."""

    path: str
    service_kind: str
    image: str
    vcpus: int
    memory_mib: int
    region: str = ""
    candidates: tuple[str, ...] = ()
    min_members: int = 1
    max_members: int = 10
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageVersionState:
    """A published version of a catalog image: when it was published (Unix seconds), its size, and
    why it may not be collected (open sessions, volumes cloned from it; empty: nothing needs it)."""

    version: int
    published_at: float
    size_mib: int
    in_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageState:
    """A catalog image (``/images/<name>``): its latest version and its versions, oldest first."""

    path: str
    latest: int
    versions: tuple[ImageVersionState, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a policy sees: the fleet at ``at`` (Unix seconds) with predicted demand; ``stale``: hosts and
    VMs whose readings are too old to trust (left alone); ``services``: the managed services by path."""

    at: float
    hosts: dict[str, HostState]
    vms: dict[str, VMState]
    stale: frozenset[str] = frozenset()
    services: dict[str, ServiceState] = field(default_factory=dict)
    images: dict[str, ImageState] = field(default_factory=dict)  # the image catalog, by path


@dataclass(frozen=True, slots=True)
class Move:
    vm: str
    dest: str
    why: str = ""


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    """A VM a policy wants (e.g. a PsEPR overlay member): spawned by ``spawn_vm`` on ``host``."""

    name: str
    host: str
    image: str
    vcpus: int
    memory_mib: int
    why: str = ""


@dataclass(frozen=True, slots=True)
class Collect:
    """Old versions of a catalog image to collect: a ``gc_image`` transaction keeping the newest
    ``keep`` and every version published at or after ``published_before`` (a version in use is never
    collected: the procedure checks that, not the plan)."""

    image: str  # the image's name (``/images/<name>``)
    keep: int
    published_before: float
    versions: tuple[int, ...] = ()  # what the policy expects to go (shown in the decision log)
    why: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """A policy's answer. ``gain`` and ``cost`` are in the policy's utility unit (documented per policy);
    the actuator runs the plan only when ``gain > cost x hysteresis``. An empty plan says ``why``."""

    policy: str
    moves: tuple[Move, ...] = ()
    spawns: tuple[SpawnRequest, ...] = ()
    destroys: tuple[str, ...] = ()
    power_off: tuple[str, ...] = ()
    power_on: tuple[str, ...] = ()
    gain: float = 0.0
    cost: float = 0.0
    why: str = ""
    solve_s: float = 0.0
    # The managed service whose members the spawns and destroys are: the actuator then runs
    # ``spawn_service_member``/``destroy_service_member`` (VM and member record in one transaction).
    service: str = ""
    collect: tuple[Collect, ...] = ()  # image versions to collect (``gc_image``), after everything else

    @property
    def empty(self) -> bool:
        return not (
            self.moves or self.spawns or self.destroys or self.power_off or self.power_on or self.collect
        )


class Policy(Protocol):
    """A plug-in: a declarative model (constraints + utility - migration cost) answering one pass.
    ``budget``: at most that many migrations; ``time_limit``: seconds for the solver, after which the
    policy answers an empty plan saying it timed out (the configuration stays as it is)."""

    name: str

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan: ...
