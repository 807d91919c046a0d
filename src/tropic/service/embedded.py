"""Opening an embedded controller from a store URI and a driver URI.

The store comes from :mod:`tropic.store.registry`, the driver from :mod:`tropic.drivers.registry`; a
``sim://`` driver without a file keeps its devices beside the store (``store.db.devices``). A new store is
initialised with a model (a generated datacenter by default) and the devices are provisioned to match it.

The process that opens an embedded controller owns its store and devices until :meth:`Embedded.close`
(:mod:`tropic.owner`): any other process opening them is refused with
:class:`~tropic.errors.StoreInUse` naming this one, so it acts through this one's API or not at all.
A ``zk://`` store is refused here: it belongs to its elected leader (:mod:`tropic.cluster`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tropic.drivers.base import Driver, Step
from tropic.drivers.registry import open_driver
from tropic.drivers.router import Opener, RouterDriver, ephemeral
from tropic.drivers.sim import Fault, SimDriver
from tropic.errors import ConfigError
from tropic.model import Model, project
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.owner import Holder
from tropic.store.base import Store
from tropic.store.registry import open_store, parse_store_uri
from tropic.txn.controller import Controller

DEFAULT_STORE = "tropic.db"


@dataclass(slots=True)
class Embedded:
    """An embedded controller. ``driver`` is the server's own backend (``--driver``); the controller
    drives every device through ``router``, which also opens the backends of other kinds the model's
    devices name (:mod:`tropic.drivers.router`)."""

    controller: Controller
    driver: Driver
    store: Store
    created: bool
    router: RouterDriver

    def close(self) -> None:
        """Stop the controller (if started) and release the devices, then the store: the store's lock
        goes last, so a process that gets it next also finds the devices free."""
        self.controller.stop()
        self.router.close()
        self.store.close()


def default_datacenter() -> Model:
    """The model a new store starts with unless told otherwise: the generated 3 x 4 datacenter."""
    return build_datacenter(DatacenterSpec())


def open_embedded(
    store: str = DEFAULT_STORE,
    driver: str | None = None,
    *,
    initial: Callable[[], Model] | None = None,
    seed: Callable[[Driver], Model] | None = None,
    faults: list[Fault] | None = None,
    workers: int = 8,
    holder: Holder | None = None,
) -> Embedded:
    """Open (or create) an embedded controller, not started. A new store is initialised with ``initial()``
    (a generated datacenter by default), or with ``seed(driver)`` when given (a model that asks the
    devices, e.g. an inventory file's hosts their capacity), and the devices are provisioned to match it.

    This process owns the store from here on; ``holder`` describes it (default: its pid and command) to
    any process refused meanwhile (:class:`~tropic.errors.StoreInUse`), e.g. a server with its URL."""
    spec = parse_store_uri(store)
    if spec.scheme == "zk":
        raise ConfigError(
            f"{spec.uri} is a distributed store: it is written only by its elected leader; "
            "act through the leader's API (--url)"
        )
    st = open_store(spec, holder=holder)
    try:
        drv = open_driver(driver or "sim://", default_state=spec.devices, holder=holder)
    except BaseException:
        st.close()
        raise
    router = RouterDriver(drv, openers=_openers(drv, spec.devices, holder))
    try:
        has_model = getattr(st, "has_model", None)  # SQLite and ZooKeeper stores can tell
        fresh = not (callable(has_model) and has_model())
        if fresh:
            model = seed(router) if seed is not None else (initial or initial_model(drv))()
            router.bind(model, provision=False)  # which backend gets which device
            if provisionable(router):
                # Devices first: a crash before the store is initialised redoes both.
                router.load(project(model))
            else:
                define_routers(router, model)  # real hypervisors: only the routers' network records
            if isinstance(drv, SimDriver) and faults is not None:
                drv.faults = list(faults)
                drv.save_faults()
            c = Controller.open(st, router, initial=lambda: model, workers=workers)
        else:
            c = Controller.open(st, router, workers=workers)  # binds (and provisions in-process devices)
    except BaseException:
        router.close()
        st.close()
        raise
    return Embedded(c, drv, st, fresh, router)


def _openers(drv: Driver, devices: Path | None, holder: Holder | None) -> dict[str, Opener]:
    """How this server opens a backend of another kind on demand: a sim keeps its devices beside the
    store (when the server's own driver is not the sim, which has that file already)."""
    if drv.name == "sim" or devices is None:
        return {}
    return {"sim": lambda: open_driver("sim://", default_state=devices, holder=holder)}


def provisionable(router: RouterDriver) -> bool:
    """Can a new store's devices be provisioned from its model? Not when a backend's devices are real
    hypervisors: tropic never wipes those (their model comes from discovery instead)."""
    return all(d.name == "sim" or ephemeral(d) for d in list(router.backends.values()))


def define_routers(router: RouterDriver, model: Model) -> None:
    """Define the model's routers on their backends (a discovered network gets its router's record, an
    inactive libvirt network; idempotent), leaving everything else on real hypervisors as it is."""
    for path, node in sorted(model.nodes.items()):
        if node.kind == "router":
            network, name = path.rsplit("/", 1)
            args = {"name": name, "next_hop": str(node.attrs.get("next_hop", ""))}
            router.execute(Step(0, 0, network, "add_router", args))


def initial_model(drv: Driver) -> Callable[[], Model]:
    """What a new store starts with: the generated datacenter, or, on real libvirt hypervisors, what
    discovery reads from them (one host per connection; tropic never wipes a real hypervisor)."""
    if drv.name == "libvirt" and not ephemeral(drv):
        from tropic.drivers.discover import discover_model

        uri = str(getattr(drv, "uri", ""))
        return lambda: discover_model([uri])
    return default_datacenter
