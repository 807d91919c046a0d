"""Opening a controller from URIs: one registry resolves stores and drivers by name.

Stores: ``sqlite:///path/to/store.db`` (or a plain path), ``memory://``, ``zk://host:port[,...]/chroot``
(distributed; ``tropic serve`` runs it as replicated controllers, see :mod:`tropic.ha`). Drivers:
``sim://`` (in memory) or ``sim:///path/to/devices.db`` (durable simulated devices); other schemes come from
:mod:`tropic.drivers.registry` when installed. An embedded store and its sim devices live side by side:
``store.db`` and ``store.db.devices``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tropic.drivers.base import Driver
from tropic.drivers.sim import Fault, SimDriver
from tropic.errors import ConfigError
from tropic.model import Model, project
from tropic.scenario.datacenter import DatacenterSpec, build_datacenter
from tropic.store.base import MemoryStore, Store
from tropic.store.sqlite import SQLiteStore
from tropic.txn.controller import Controller

DEFAULT_STORE = "tropic.db"


def store_path(uri: str) -> Path | None:
    """The file of an embedded store URI, or None for ``memory://`` and ``zk://`` (no local file)."""
    if uri in ("memory://", "memory") or uri.startswith("zk://"):
        return None
    if uri.startswith("sqlite://"):
        rest = uri[len("sqlite://") :]
        if not rest:
            raise ConfigError(f"store URI {uri!r} names no file (expected sqlite:///path/to/store.db)")
        return Path(rest[1:] if rest.startswith("//") else rest)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ConfigError(
            f"unknown store URI scheme {scheme!r} in {uri!r}; expected sqlite:///PATH, zk://HOST:PORT/CHROOT "
            "or memory://"
        )
    return Path(uri)


def open_store(uri: str) -> Store:
    if uri.startswith("zk://"):
        from tropic.store.zk import ZooKeeperStore  # kazoo loads only when used

        return ZooKeeperStore(uri)
    path = store_path(uri)
    return MemoryStore() if path is None else SQLiteStore(path)


def devices_path(store: Path) -> Path:
    return store.with_name(store.name + ".devices")


def open_sim(uri: str, *, default_state: Path | None = None) -> SimDriver:
    """``sim://`` or ``sim:///path/devices.db`` with optional ``?seed=N&latency=S``."""
    parts = urlsplit(uri)
    if parts.scheme != "sim":
        raise ConfigError(f"not a sim driver URI: {uri!r}")
    q = parse_qs(parts.query)
    try:
        seed = int(q.get("seed", ["0"])[0])
        latency = float(q.get("latency", ["0"])[0])
    except ValueError:
        raise ConfigError(f"bad seed or latency in driver URI {uri!r}") from None
    state = Path(parts.path) if parts.path not in ("", "/") else default_state
    return SimDriver(seed=seed, latency=latency, state_file=state)


def open_driver_uri(uri: str, *, default_state: Path | None = None) -> Driver:
    if uri.startswith("sim:"):
        return open_sim(uri, default_state=default_state)
    try:
        from tropic.drivers.registry import open_driver  # optional backends load lazily
    except ImportError:
        raise ConfigError(f"unknown driver URI {uri!r}; expected sim:// or sim:///PATH") from None
    return open_driver(uri)


@dataclass(slots=True)
class Embedded:
    controller: Controller
    driver: Driver
    store: Store
    created: bool


def open_embedded(
    store: str = DEFAULT_STORE,
    driver: str | None = None,
    *,
    initial: Callable[[], Model] | None = None,
    faults: list[Fault] | None = None,
    workers: int = 8,
) -> Embedded:
    """Open (or create) an embedded controller. A new store is initialised with ``initial()`` (a
    generated datacenter by default) and the devices are provisioned to match it."""
    st = open_store(store)
    path = store_path(store)
    dev_default = devices_path(path) if path is not None else None
    drv = open_driver_uri(driver or "sim://", default_state=dev_default)
    has_model = getattr(st, "has_model", None)  # SQLite and ZooKeeper stores can tell
    fresh = not (callable(has_model) and has_model())
    if fresh:
        model = (initial or _default_datacenter)()
        load = getattr(drv, "load", None)
        if load is not None:
            load(project(model))  # devices first: a crash before the store is initialised redoes both
        if isinstance(drv, SimDriver) and faults is not None:
            drv.faults = list(faults)
            drv.save_faults()
        c = Controller.open(st, drv, initial=lambda: model, workers=workers)
    else:
        c = Controller.open(st, drv, workers=workers)
    return Embedded(c, drv, st, fresh)


def _default_datacenter() -> Model:
    return build_datacenter(DatacenterSpec())


def open_controller(store: str | None = None, driver: str | None = None) -> Controller:
    """The controller ``tropic serve`` runs: embedded SQLite store and sim devices by default."""
    return open_embedded(store or DEFAULT_STORE, driver).controller
