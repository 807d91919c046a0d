"""The driver contract: one method per physical action of the standard schema, grouped by capability.

Workers replay the action log through :meth:`Driver.execute`; each method receives the resource path the
action targets and the action's plain-data arguments. Drivers must make every action idempotent (applying
an action whose effect is already present succeeds), so recovery can redo or undo a step that may or may
not have reached the device before a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, Self

from tropic.drivers.geo import GeoDriver
from tropic.errors import DriverError
from tropic.model import RUNNING, STANDARD, STOPPED, Inventory, Model, Value

Args = Mapping[str, Value]
# Readings of devices, per path (a host or a VM): metric -> value. See :meth:`Driver.stats`.
Stats = dict[str, dict[str, float]]


class UtilisationSource(Protocol):
    """What a simulated VM demands: CPU utilisation (fraction of its vCPUs, 0..1) of the VM ``key``
    (``region/name``) at ``now`` (Unix seconds), or None when unknown. The autopilot's trace player is
    one."""

    def cpu(self, key: str, now: float) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Step:
    """One physical step: a forward action or an undo action of a transaction's log."""

    txn: int
    index: int
    path: str
    action: str
    args: Args
    undo: bool = False

    def describe(self) -> str:
        what = "undo " if self.undo else ""
        return f"{what}{self.action} on {self.path}"


class ComputeDriver(ABC):
    """Hypervisor hosts and their VMs."""

    @abstractmethod
    def create_vm(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def delete_vm(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def create_config(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def delete_config(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def migrate(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def import_volume(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def unimport_volume(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def start(self, vm: str, args: Args) -> None: ...
    @abstractmethod
    def stop(self, vm: str, args: Args) -> None: ...
    @abstractmethod
    def resize(self, vm: str, args: Args) -> None: ...

    def recreate_vm(self, host: str, args: Args) -> None:
        """Rebuild on ``host`` a VM of a failed host from its volume (``args``: the VM's ``name``,
        ``vcpus``, ``memory_mib``, ``image``, ``volume``, ``state``, ``uid``, ``labels`` and the failed
        ``source``): on the device, a VM definition like :meth:`create_vm`'s."""
        self.create_vm(host, args)

    def unrecreate_vm(self, host: str, args: Args) -> None:
        """Undo of :meth:`recreate_vm`: the VM defined on ``host`` is deleted (the failed source is not
        touched)."""
        self.delete_vm(host, args)

    def discard_domain(self, host: str, args: Args) -> None:
        """Delete a stale VM (``args["name"]``) from ``host``: one the model holds elsewhere."""
        self.delete_vm(host, args)

    def restore_domain(self, host: str, args: Args) -> None:
        """Undo of :meth:`discard_domain`: define the VM again, stopped, without a volume."""
        spec = {"name": args["name"], "vcpus": args["vcpus"], "memory_mib": args["memory_mib"]}
        self.create_vm(host, {**spec, "image": "", "volume": "", "state": STOPPED})


class StorageDriver(ABC):
    """Storage hosts, their images and volumes."""

    @abstractmethod
    def clone_image(self, san: str, args: Args) -> None: ...
    @abstractmethod
    def delete_volume(self, san: str, args: Args) -> None: ...
    @abstractmethod
    def export_volume(self, volume: str, args: Args) -> None: ...
    @abstractmethod
    def unexport_volume(self, volume: str, args: Args) -> None: ...


class NetworkDriver(ABC):
    """Routers."""

    @abstractmethod
    def set_next_hop(self, router: str, args: Args) -> None: ...


class FleetDriver:
    """Bringing devices under management and releasing them (the inventory's hosts, storage hosts,
    images and routers, added and removed by transactions). These defaults do nothing: a device that
    exists needs no action to be managed. Drivers that can check the device (does it answer, is it as
    large as declared) or provision it override them; the path is the container (region, storage host,
    network) and ``args["name"]`` the device added or removed."""

    def add_region(self, path: str, args: Args) -> None:
        return None

    def remove_region(self, path: str, args: Args) -> None:
        return None

    def add_host(self, region: str, args: Args) -> None:
        return None

    def remove_host(self, region: str, args: Args) -> None:
        return None

    def add_storage_host(self, region: str, args: Args) -> None:
        return None

    def remove_storage_host(self, region: str, args: Args) -> None:
        return None

    def add_image(self, san: str, args: Args) -> None:
        return None

    def remove_image(self, san: str, args: Args) -> None:
        return None

    def add_network(self, path: str, args: Args) -> None:
        return None

    def remove_network(self, path: str, args: Args) -> None:
        return None

    def add_router(self, network: str, args: Args) -> None:
        return None

    def remove_router(self, network: str, args: Args) -> None:
        return None

    def configure(self, path: str, args: Args) -> None:
        """A host's, storage host's or region's settings changed (capacity, connection, labels...)."""
        return None

    def power_off(self, host: str, args: Args) -> None:
        """Power compute host ``host`` off. Real power control (IPMI, Wake-on-LAN) is not wired: the
        simulator and libvirt record nothing, the model keeps the power state."""
        return None

    def power_on(self, host: str, args: Args) -> None:
        """Power compute host ``host`` on (see :meth:`power_off`: not wired to a device)."""
        return None

    def host_alive(self, host: str) -> bool | None:
        """Does compute host ``host`` answer? True, False (dead: lost power, failed, unreachable), or
        None when this driver cannot tell. This default cannot tell."""
        return None

    def declare_failed(self, host: str, args: Args) -> None:
        """The device check of declaring ``host`` dead: refused when the host answers (a live host's VMs
        are migrated, never rebuilt). A driver that cannot tell accepts the operator's word."""
        if self.host_alive(host) is True:
            raise DriverError(
                f"{host} answers: it is alive, so it is not declared failed (drain or evacuate it instead)",
                path=host,
            )

    def declare_recovered(self, host: str, args: Args) -> None:
        """``host`` answers again: nothing to do on a device."""
        return None

    def capacity(self, host: str) -> tuple[int, int] | None:
        """(CPUs, memory in MiB) of compute host ``host`` as its device reports them, or None when the
        device cannot tell (the simulator) or the host is unknown to this driver."""
        return None


class ReplicaDriver:
    """The processes of replicated jobs' replicas (:mod:`tropic.model.jobs`): ``replica`` is the replica's
    path, ``args`` its ``job``, ``replica`` name, ``host``, ``program`` (argv) and ``zk``. These defaults
    do nothing: where a replica is a VM of its own (libvirt), its domain is the replica. The simulator
    runs each replica as a local process (:mod:`tropic.drivers.sim_process`)."""

    def runs_replicas_on(self, host: str) -> bool:
        """True when this driver runs the replicas of compute host ``host`` as processes of its own, so
        that :meth:`replica_processes` not listing one means it is gone."""
        return False

    def run_replica(self, replica: str, args: Args) -> None:
        return None

    def halt_replica(self, replica: str, args: Args) -> None:
        return None

    def replica_processes(self) -> dict[str, dict[str, Value]]:
        """What this driver knows of the replicas' processes, per replica path: ``host``, ``pid``,
        ``alive``, ``exit_code`` (None while alive or unknown), ``host_down`` (its host failed), ``started``
        (Unix seconds). Empty when the driver does not run them itself."""
        return {}


class Driver(ComputeDriver, StorageDriver, NetworkDriver, FleetDriver, ReplicaDriver, GeoDriver):
    """A complete backend: every capability plus an inventory of what the devices really hold."""

    name = "driver"

    def execute(self, step: Step) -> None:
        """Run one step on its device; raise a :class:`DriverError` naming the resource on failure."""
        method = getattr(self, step.action, None)
        if step.action not in ACTIONS or method is None:
            raise DriverError(f"{self.name} driver has no action {step.action!r}", path=step.path)
        method(step.path, step.args)

    @abstractmethod
    def inventory(self) -> Inventory:
        """The physical state, in the shape of :func:`tropic.model.project`."""

    def prompt(self, step: Step) -> bool:
        """True when ``step`` certainly returns at once (an in-memory simulation without latency): workers
        then call it directly instead of on a helper thread under a deadline, which costs a thread hop."""
        return False

    def reload(self, path: str) -> Inventory:
        """What the devices at or below ``path`` really hold, and the device holding ``path`` when it lies
        below one (a VM's host), in inventory shape. This default filters :meth:`inventory`; drivers that
        can ask one device override it (the reconciler reads one device at a time)."""
        return subtree(self.inventory(), path)

    def probe(self, step: Step) -> bool | None:
        """Did ``step``'s effect reach its device? The "did it happen?" check before undoing a step that
        failed or timed out: True (present), False (absent, nothing to undo), None (cannot tell: undo
        anyway, undo actions are idempotent). This default reads the device with :meth:`reload`."""
        if step.action == "migrate":
            dest = str(step.args.get("dest", ""))
            name = step.args.get("name")
            at_dest = self._vm_spec(dest, name) is not None
            return at_dest and self._vm_spec(step.path, name) is None
        check = _EFFECTS.get(step.action)
        if check is None:
            return None
        device = _device_of(step.path)
        return check(self.reload(device), step.path, step.args)

    def _vm_spec(self, host: str, name: Value) -> Value:
        h = self.reload(host)["hosts"].get(host)
        return None if h is None else h["vms"].get(name)

    def bind(self, model: Model, *, devices: Iterable[str] | None = None) -> Self:
        """Take the device connections from ``model`` (every host and storage host, or only those in
        ``devices``: the ones this backend drives). Called at every controller start, before any step
        runs. This default has nothing to bind (the sim's devices are its own state)."""
        return self

    def stats(self, hosts: Iterable[str], now: float) -> Stats:
        """Readings of the compute hosts ``hosts`` and their VMs, per path. Metrics: ``cpu`` and
        ``memory`` (fractions in use, 0..1, as of now), or counters the caller turns into rates between
        two readings: ``cpu_time_s`` (a VM's CPU seconds) with ``wall_s`` (when read) and ``vcpus``;
        ``cpu_busy_s`` and ``cpu_total_s`` (a host's). ``demand_cores`` (a host: its VMs' CPU demand).
        A host or VM the driver cannot read is left out: unknown, never 0%. ``now`` is the caller's
        clock (a simulation plays its traces at that time). This default reads nothing."""
        return {}

    def close(self) -> None:
        """Release connections and flush state."""


def capacity_error(host: str, cpus: int, memory_mib: int, real: tuple[int, int] | None) -> str:
    """Why a host declared with ``cpus`` and ``memory_mib`` does not fit its device's ``real`` capacity
    (CPUs, MiB), naming the host and both figures; empty when it fits or the device cannot tell."""
    if real is None:
        return ""
    rc, rm = real
    over = []
    if cpus > rc:
        over.append(f"{cpus} CPUs declared, the device has {rc}")
    if memory_mib > rm:
        over.append(f"{memory_mib} MiB of memory declared, the device has {rm} MiB")
    return f"host {host} is declared larger than its device: {'; '.join(over)}" if over else ""


# --- inventories of parts of a datacenter -----------------------------------------------------------------
_SECTIONS = ("hosts", "storage", "routers")


def covers(scope: str, path: str) -> bool:
    """Is ``path`` at or below ``scope``?"""
    return scope == "/" or path == scope or path.startswith(scope + "/")


def subtree(inventory: Inventory, path: str) -> Inventory:
    """The part of ``inventory`` at or below ``path``, plus the device holding ``path`` (whole) when
    ``path`` lies below a device."""
    out: Inventory = {}
    for section in _SECTIONS:
        items = inventory.get(section, {})
        out[section] = {p: v for p, v in items.items() if covers(path, p) or covers(p, path)}
    return out


def _device_of(path: str) -> str:
    """The device path a step's resource lives on: a VM's host, a volume's storage host."""
    parts = path.split("/")  # "", "compute", region, host, vm
    if len(parts) > 4 and parts[1] in ("compute", "storage"):
        return "/".join(parts[:4])
    return path


def _host(inv: Inventory, path: str) -> dict[str, Value]:
    return inv["hosts"].get(path) or {"vms": {}, "configs": [], "volumes": []}


def _vm(inv: Inventory, vm: str) -> dict[str, Value] | None:
    host, name = vm.rsplit("/", 1)
    spec = _host(inv, host)["vms"].get(name)
    return None if spec is None else dict(spec)


def _volume(inv: Inventory, volume: str) -> dict[str, Value] | None:
    san, name = volume.rsplit("/", 1)
    vol = inv["storage"].get(san, {"volumes": {}})["volumes"].get(name)
    return None if vol is None else dict(vol)


def _in_san(inv: Inventory, san: str, name: Value) -> bool:
    return name in inv["storage"].get(san, {"volumes": {}})["volumes"]


def _state_is(state: str) -> Callable[[Inventory, str, Args], bool]:
    def check(inv: Inventory, path: str, args: Args) -> bool:
        vm = _vm(inv, path)
        return vm is not None and vm.get("state") == state

    return check


def _resized(inv: Inventory, path: str, args: Args) -> bool:
    vm = _vm(inv, path)
    return vm is not None and (vm["vcpus"], vm["memory_mib"]) == (args["vcpus"], args["memory_mib"])


def _exported(want: bool) -> Callable[[Inventory, str, Args], bool]:
    def check(inv: Inventory, path: str, args: Args) -> bool:
        vol = _volume(inv, path)
        return bool(vol and vol.get("exported")) == want

    return check


def _next_hop(inv: Inventory, path: str, args: Args) -> bool:
    r = inv["routers"].get(path)
    return r is not None and r.get("next_hop") == args["next_hop"]


# What each action's effect looks like in an inventory read after it (for :meth:`Driver.probe`).
_EFFECTS: dict[str, Callable[[Inventory, str, Args], bool]] = {
    "create_vm": lambda inv, p, a: a["name"] in _host(inv, p)["vms"],
    "recreate_vm": lambda inv, p, a: a["name"] in _host(inv, p)["vms"],
    "discard_domain": lambda inv, p, a: a["name"] not in _host(inv, p)["vms"],
    "restore_domain": lambda inv, p, a: a["name"] in _host(inv, p)["vms"],
    "unrecreate_vm": lambda inv, p, a: a["name"] not in _host(inv, p)["vms"],
    "delete_vm": lambda inv, p, a: a["name"] not in _host(inv, p)["vms"],
    "create_config": lambda inv, p, a: a["name"] in _host(inv, p)["configs"],
    "delete_config": lambda inv, p, a: a["name"] not in _host(inv, p)["configs"],
    "import_volume": lambda inv, p, a: a["volume"] in _host(inv, p)["volumes"],
    "unimport_volume": lambda inv, p, a: a["volume"] not in _host(inv, p)["volumes"],
    "start": _state_is(RUNNING),
    "stop": _state_is(STOPPED),
    "resize": _resized,
    "clone_image": lambda inv, p, a: _in_san(inv, p, a["volume"]),
    "delete_volume": lambda inv, p, a: not _in_san(inv, p, a["volume"]),
    "export_volume": _exported(True),
    "unexport_volume": _exported(False),
    "set_next_hop": _next_hop,
    "add_host": lambda inv, p, a: f"{p}/{a['name']}" in inv["hosts"],
    "remove_host": lambda inv, p, a: f"{p}/{a['name']}" not in inv["hosts"],
    "add_storage_host": lambda inv, p, a: f"{p}/{a['name']}" in inv["storage"],
    "remove_storage_host": lambda inv, p, a: f"{p}/{a['name']}" not in inv["storage"],
}


ACTIONS = frozenset(STANDARD.actions())
# The actions that bring devices under management or release them (see :class:`FleetDriver`).
FLEET_ACTIONS = frozenset(a for a in ACTIONS if a in vars(FleetDriver))

# A missing driver method fails here, at import, not in production.
_missing = sorted(a for a in ACTIONS if not hasattr(Driver, a))
if _missing:
    raise ImportError(f"driver contract lacks methods for actions {_missing}")
