"""Opening an embedded controller from a store URI and a driver URI.

The store comes from :mod:`tropic.store.registry`, the driver from :mod:`tropic.drivers.registry`; a
``sim://`` driver without a file keeps its devices beside the store (``store.db.devices``). A new store is
initialised with a model (a generated datacenter by default) and the devices are provisioned to match it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tropic.drivers.base import Driver
from tropic.drivers.registry import open_driver
from tropic.drivers.sim import Fault, SimDriver
from tropic.model import Model, project
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.store.base import Store
from tropic.store.registry import open_store, parse_store_uri
from tropic.txn.controller import Controller

DEFAULT_STORE = "tropic.db"


@dataclass(slots=True)
class Embedded:
    controller: Controller
    driver: Driver
    store: Store
    created: bool

    def close(self) -> None:
        """Stop the controller (if started) and release the store and the devices."""
        self.controller.stop()
        self.store.close()
        self.driver.close()


def default_datacenter() -> Model:
    """The model a new store starts with unless told otherwise: the generated 3 x 4 datacenter."""
    return build_datacenter(DatacenterSpec())


def open_embedded(
    store: str = DEFAULT_STORE,
    driver: str | None = None,
    *,
    initial: Callable[[], Model] | None = None,
    faults: list[Fault] | None = None,
    workers: int = 8,
) -> Embedded:
    """Open (or create) an embedded controller, not started. A new store is initialised with ``initial()``
    (a generated datacenter by default) and the devices are provisioned to match it."""
    spec = parse_store_uri(store)
    st = open_store(spec)
    try:
        drv = open_driver(driver or "sim://", default_state=spec.devices)
    except BaseException:
        st.close()
        raise
    try:
        has_model = getattr(st, "has_model", None)  # SQLite and ZooKeeper stores can tell
        fresh = not (callable(has_model) and has_model())
        if fresh:
            model = (initial or default_datacenter)()
            load = getattr(drv, "load", None)
            if load is not None:
                load(project(model))  # devices first: a crash before the store is initialised redoes both
            if isinstance(drv, SimDriver) and faults is not None:
                drv.faults = list(faults)
                drv.save_faults()
            c = Controller.open(st, drv, initial=lambda: model, workers=workers)
        else:
            c = Controller.open(st, drv, workers=workers)
    except BaseException:
        st.close()
        drv.close()
        raise
    return Embedded(c, drv, st, fresh)
