"""The router driver: one backend per driver kind (``sim``, ``libvirt``, ...), each step sent to the backend
of the device it touches.

Every host, storage host and router of the model says which kind of driver drives it (its ``driver``
attribute; empty: the server's ``--driver``, the *default* backend). :meth:`RouterDriver.bind` reads the
model and maps every device to its backend (and each libvirt host to its ``uri`` connection); a backend is
opened on demand the first time a device needs it. Steps go to the backend of the device they touch: a
VM's, a configuration's or a volume import's host, a volume's storage host, a router; a fleet action that
adds a device goes to the backend its ``driver`` argument names (a router: else its network's), and from
then on the device is mapped there. A migration between two backends is refused (the model refuses it
first, in simulation, when both hosts name their driver). Inventories and reads merge what every backend
reports; :meth:`load` provisions each backend with its share.

Backends whose devices live only inside this process (libvirt's test hypervisors) start empty in every
process: :meth:`bind` provisions them from the model, so a restarted server finds them as the model says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Self

from tropic.drivers.base import Args, Driver, Stats, Step, capacity_error, covers
from tropic.errors import ConfigError, DriverError
from tropic.model import Inventory, Model, Value, project

log = logging.getLogger(__name__)

KINDS = ("sim", "libvirt")
Opener = Callable[[], Driver]
DEVICE_KINDS = {"host": "hosts", "storage_host": "storage", "router": "routers"}

# Fleet actions whose path is the container and whose device is ``<path>/<args["name"]>``.
_ADDS = {"add_host", "add_storage_host", "add_router"}
_REMOVES = {"remove_host", "remove_storage_host", "remove_router"}
_NO_DEVICE = {"add_region", "remove_region", "add_network", "remove_network"}


def device_of(step: Step) -> str | None:
    """The device a step touches (a host, storage host or router path); None for a step on no device
    (a region or a network itself)."""
    if step.action in _NO_DEVICE:
        return None
    if step.action in _ADDS or step.action in _REMOVES:
        return f"{step.path}/{step.args['name']}"
    parts = step.path.split("/")  # "", "compute"|"storage"|"network", region|network, device, ...
    if len(parts) >= 4:
        return "/".join(parts[:4])
    return None  # configure on a region


class RouterDriver(Driver):
    """Dispatch each step to the backend driving its device (see the module docstring).

    ``default``: the server's driver (its kind is its ``name``). ``openers``: how to open a backend of
    another kind on demand (default: :func:`default_opener`). ``resolver``: where to read the model when a
    step touches a device this router does not know (a worker process that has no model of its own)."""

    name = "router"

    def __init__(
        self,
        default: Driver,
        *,
        openers: Mapping[str, Opener] | None = None,
        resolver: Callable[[], Model | None] | None = None,
    ) -> None:
        self.default_kind = default.name
        self.backends: dict[str, Driver] = {self.default_kind: default}
        self.openers = dict(openers or {})
        self.resolver = resolver
        self.devices: dict[str, str] = {}  # device path -> driver kind
        self.networks: dict[str, str] = {}  # network path -> driver kind of its routers
        self.capacity_problems: list[str] = []  # hosts declared larger than their device (last bind)
        self._loaded: set[str] = set()  # backends provisioned in this process
        self._lock = threading.RLock()

    @property
    def default(self) -> Driver:
        return self.backends[self.default_kind]

    # --- backends ----------------------------------------------------------------------------------------
    def backend(self, kind: str) -> Driver:
        """The backend of driver kind ``kind`` (empty: the default), opened on first use."""
        kind = kind or self.default_kind
        with self._lock:
            found = self.backends.get(kind)
            if found is not None:
                return found
            opener = self.openers.get(kind) or default_opener(kind)
            drv = self.backends[kind] = opener()
            log.info("opened the %s backend on demand", kind)
            return drv

    def kind_of(self, device: str) -> str:
        with self._lock:
            return self.devices.get(device, self.default_kind)

    def _route(self, step: Step) -> Driver:
        device = device_of(step)
        if device is None:
            return self.default
        with self._lock:
            kind = self.devices.get(device)
        if kind is None and step.action in _ADDS:
            kind = str(step.args.get("driver") or "")
            if not kind and step.action == "add_router":
                kind = self.networks.get(step.path, "")
            kind = kind or self.default_kind
            self._check_kind(kind, device)
            with self._lock:
                self.devices[device] = kind
        if kind is None and self.resolver is not None:
            model = self.resolver()  # a device added since this process bound: read the model again
            if model is not None:
                self.bind(model, provision=False)
            with self._lock:
                kind = self.devices.setdefault(device, self.default_kind)  # asked once per device
        return self.backend(kind or self.default_kind)

    def _check_kind(self, kind: str, device: str) -> None:
        if kind not in self.backends and kind not in self.openers and kind not in KINDS:
            raise DriverError(
                f"{device}: unknown driver kind {kind!r}; "
                f"known: {', '.join(sorted({*KINDS, *self.openers}))}",
                path=device,
            )

    # --- binding -------------------------------------------------------------------------------------
    def bind(self, model: Model, *, devices: Iterable[str] | None = None, provision: bool = True) -> Self:
        """Map every host, storage host and router of ``model`` to the backend its ``driver`` attribute
        names (and bind each backend to its devices); provision backends whose devices live only in this
        process from the model (``provision``). ``devices`` is accepted for the contract and ignored: a
        router drives every device."""
        owned: dict[str, str] = {}
        networks: dict[str, str] = {}
        for path, node in model.nodes.items():
            if node.kind == "net":
                networks[path] = str(node.attrs.get("driver", "")) or self.default_kind
        for path, node in model.nodes.items():
            if node.kind in ("host", "storage_host"):
                owned[path] = str(node.attrs.get("driver", "")) or self.default_kind
            elif node.kind == "router":
                net = path.rsplit("/", 1)[0]
                owned[path] = str(node.attrs.get("driver", "")) or networks.get(net, self.default_kind)
        for device, kind in owned.items():
            self._check_kind(kind, device)
        with self._lock:
            self.devices = owned
            self.networks = networks
        problems: list[str] = []
        by_kind: dict[str, list[str]] = {}
        for device, kind in owned.items():
            by_kind.setdefault(kind, []).append(device)
        for kind in sorted(set(by_kind) | {self.default_kind}):
            drv = self.backend(kind)
            mine = by_kind.get(kind, [])
            drv.bind(model, devices=mine)
            if provision and kind not in self._loaded and ephemeral(drv) and mine:
                drv_load = getattr(drv, "load", None)
                if callable(drv_load):
                    log.info("provisioning the %s backend's in-process devices from the model", kind)
                    drv_load(_share(project(model), set(mine)))
                    self._loaded.add(kind)
            problems += capacity_problems(drv, model, mine)
        for p in problems:
            log.warning("%s", p)
        self.capacity_problems = problems
        return self

    def unmanaged(self) -> Inventory:
        """Device objects the backends hold that are not mapped to any device of the model (e.g. domains
        on a bound libvirt host are in its inventory; a libvirt network no router owns is here)."""
        out: Inventory = {"hosts": {}, "storage": {}, "routers": {}}
        inv = self.inventory()
        with self._lock:
            known = set(self.devices)
        for section in out:
            out[section] = {p: v for p, v in inv.get(section, {}).items() if p not in known}
        return out

    # --- the contract --------------------------------------------------------------------------------
    def execute(self, step: Step) -> None:
        drv = self._route(step)
        if step.action == "migrate":
            dest = str(step.args.get("dest", ""))
            src_kind, dst_kind = self.kind_of(device_of(step) or ""), self.kind_of(dest)
            if src_kind != dst_kind:
                raise DriverError(
                    f"cannot migrate {step.path}/{step.args.get('name')} to {dest}: {step.path} is driven by "
                    f"{src_kind} and {dest} by {dst_kind} (a migration stays within one backend)",
                    path=step.path,
                )
        elif step.action in ("import_volume", "unimport_volume", "create_vm") and step.args.get("volume"):
            volume = str(step.args["volume"])
            san = "/".join(volume.split("/")[:4])
            host_kind, san_kind = self.kind_of(device_of(step) or ""), self.kind_of(san)
            if host_kind != san_kind and step.action == "import_volume":
                raise DriverError(
                    f"cannot import {volume} on {step.path}: {san} is driven by {san_kind} and "
                    f"{step.path} by {host_kind} (a host imports volumes of its own backend's storage)",
                    path=step.path,
                )
        drv.execute(step)
        if step.action in _REMOVES:
            with self._lock:
                self.devices.pop(f"{step.path}/{step.args['name']}", None)
        elif step.action == "add_network":
            with self._lock:
                kind = str(step.args.get("driver") or "") or self.default_kind
                self.networks[f"{step.path}/{step.args['name']}"] = kind
        elif step.action == "configure" and "driver" in step.args:
            device = device_of(step)
            if device is not None:
                with self._lock:
                    self.devices[device] = str(step.args["driver"] or "") or self.default_kind

    def prompt(self, step: Step) -> bool:
        try:
            return self._route(step).prompt(step)
        except DriverError:
            return False

    def probe(self, step: Step) -> bool | None:
        return self._route(step).probe(step)

    def inventory(self) -> Inventory:
        out: Inventory = {"hosts": {}, "storage": {}, "routers": {}}
        for kind, drv in self._backends():
            inv = drv.inventory()
            with self._lock:
                mine = {p for p, k in self.devices.items() if k == kind}
                default = kind == self.default_kind
            for section in out:
                for path, value in inv.get(section, {}).items():
                    # A device the model maps elsewhere is that backend's to report (a sim file may still
                    # hold a host since moved to libvirt); devices the model does not know yet: default.
                    if path in mine or (default and path not in self.devices):
                        out[section][path] = value
        return {s: dict(sorted(v.items())) for s, v in out.items()}

    def reload(self, path: str) -> Inventory:
        parts = path.split("/")
        if len(parts) >= 4:  # at or below one device: its backend answers alone
            return self.backend(self.kind_of("/".join(parts[:4]))).reload(path)
        with self._lock:
            kinds = {k for p, k in self.devices.items() if covers(path, p)} or {self.default_kind}
        out: Inventory = {"hosts": {}, "storage": {}, "routers": {}}
        for kind in sorted(kinds):
            inv = self.backend(kind).reload(path)
            with self._lock:
                mine = {p for p, k in self.devices.items() if k == kind}
            for section in out:
                for p, v in inv.get(section, {}).items():
                    if p in mine or (kind == self.default_kind and p not in self.devices):
                        out[section][p] = v
        return out

    def load(self, inventory: Inventory) -> None:
        """Provision every backend with its share of ``inventory`` (devices not mapped yet: the default)."""
        with self._lock:
            devices = dict(self.devices)
        for kind in sorted({self.default_kind, *devices.values()}):
            mine = {p for p, k in devices.items() if k == kind}
            if kind == self.default_kind:
                mine |= {p for s in inventory.values() for p in s if p not in devices}
            drv = self.backend(kind)
            drv_load = getattr(drv, "load", None)
            if callable(drv_load):
                drv_load(_share(inventory, mine))
                with self._lock:
                    self._loaded.add(kind)

    def capacity(self, host: str) -> tuple[int, int] | None:
        return self.backend(self.kind_of(host)).capacity(host)

    def host_alive(self, host: str) -> bool | None:
        return self.backend(self.kind_of(host)).host_alive(host)

    def runs_replicas_on(self, host: str) -> bool:
        with self._lock:
            kind = self.devices.get(host)
        return kind is not None and self.backend(kind).runs_replicas_on(host)

    def replica_processes(self) -> dict[str, dict[str, Value]]:
        out: dict[str, dict[str, Value]] = {}
        for drv in list(self.backends.values()):
            out.update(drv.replica_processes())
        return out

    def stats(self, hosts: Iterable[str], now: float) -> Stats:
        """Each backend reads its own hosts; one that fails leaves its hosts out (stale), logged."""
        by_kind: dict[str, list[str]] = {}
        for h in hosts:
            by_kind.setdefault(self.kind_of(h), []).append(h)
        out: Stats = {}
        for kind, mine in sorted(by_kind.items()):
            try:
                out.update(self.backend(kind).stats(mine, now))
            except (DriverError, ConfigError) as e:
                log.warning("statistics of the %s backend unreadable: %s", kind, e)
        return out

    def close(self) -> None:
        for _, drv in self._backends():
            drv.close()

    def _backends(self) -> list[tuple[str, Driver]]:
        with self._lock:
            return sorted(self.backends.items())

    # A direct call of an action method is routed like a step.
    def create_vm(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "create_vm", args))

    def delete_vm(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "delete_vm", args))

    def create_config(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "create_config", args))

    def delete_config(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "delete_config", args))

    def migrate(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "migrate", args))

    def import_volume(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "import_volume", args))

    def unimport_volume(self, host: str, args: Args) -> None:
        self.execute(Step(0, 0, host, "unimport_volume", args))

    def start(self, vm: str, args: Args) -> None:
        self.execute(Step(0, 0, vm, "start", args))

    def stop(self, vm: str, args: Args) -> None:
        self.execute(Step(0, 0, vm, "stop", args))

    def resize(self, vm: str, args: Args) -> None:
        self.execute(Step(0, 0, vm, "resize", args))

    def clone_image(self, san: str, args: Args) -> None:
        self.execute(Step(0, 0, san, "clone_image", args))

    def delete_volume(self, san: str, args: Args) -> None:
        self.execute(Step(0, 0, san, "delete_volume", args))

    def export_volume(self, volume: str, args: Args) -> None:
        self.execute(Step(0, 0, volume, "export_volume", args))

    def unexport_volume(self, volume: str, args: Args) -> None:
        self.execute(Step(0, 0, volume, "unexport_volume", args))

    def set_next_hop(self, router: str, args: Args) -> None:
        self.execute(Step(0, 0, router, "set_next_hop", args))


def _share(inventory: Inventory, devices: set[str]) -> Inventory:
    return {s: {p: v for p, v in inventory.get(s, {}).items() if p in devices} for s in DEVICE_KINDS.values()}


def ephemeral(drv: Driver) -> bool:
    """Do ``drv``'s devices live only inside this process (so every process starts them empty)?"""
    check = getattr(drv, "in_process", None)
    return bool(check()) if callable(check) else False


def capacity_problems(drv: Driver, model: Model, hosts: Iterable[str]) -> list[str]:
    """Hosts of ``model`` (among ``hosts``) declared with more CPUs or memory than their device has."""
    out: list[str] = []
    for path in hosts:
        node = model.nodes.get(path)
        if node is None or node.kind != "host":
            continue
        try:
            real = drv.capacity(path)
        except DriverError as e:
            log.warning("capacity of %s unknown: %s", path, e)
            continue
        problem = capacity_error(path, int(node.attrs["cpus"]), int(node.attrs["memory_mib"]), real)
        if problem:
            out.append(problem)
    return out


def default_opener(kind: str) -> Opener:
    """How a backend of ``kind`` is opened when the server did not say: an in-memory sim, or libvirt whose
    hosts without a ``uri`` get private test hypervisors."""
    if kind == "sim":

        def sim() -> Driver:
            from tropic.drivers.sim import SimDriver

            return SimDriver()

        return sim
    if kind == "libvirt":

        def libvirt() -> Driver:
            from tropic.drivers.registry import open_driver

            return open_driver("libvirt+test:///default")

        return libvirt
    raise ConfigError(f"unknown driver kind {kind!r}; known: {', '.join(KINDS)}")


__all__ = [
    "KINDS",
    "RouterDriver",
    "capacity_problems",
    "default_opener",
    "device_of",
    "ephemeral",
]
