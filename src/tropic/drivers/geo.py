"""The driver capability of follow the sun: public addresses on the network overlay, and the cross-region
live migration of a VM (:mod:`tropic.model.geo`).

These defaults serve any backend. The overlay's table (address -> VM) is the model's: a backend with no
overlay device of its own records nothing (like :class:`~tropic.drivers.base.FleetDriver`'s defaults,
an address needs no device to exist); the sim keeps one (:mod:`tropic.drivers.sim_geo`), so tests see it
change and roll back. :meth:`GeoDriver.live_migrate` is written with the backend's own compute actions
(define the VM on the destination on its prepared volume, then undefine it on the source, keeping
its configuration there for the release step), so a backend
that can create and delete VMs can move one between regions; the sim overrides it with a pre-copy that
takes the modelled transfer time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tropic.errors import DriverError
from tropic.model import Value

if TYPE_CHECKING:
    from tropic.model import Inventory

Args = Mapping[str, Value]


class GeoDriver:
    """Addresses and cross-region live migration (a base of :class:`~tropic.drivers.base.Driver`)."""

    if TYPE_CHECKING:
        name: str

        def reload(self, path: str) -> Inventory: ...
        def create_vm(self, host: str, args: Args) -> None: ...
        def delete_vm(self, host: str, args: Args) -> None: ...
        def create_config(self, host: str, args: Args) -> None: ...

    def add_address(self, group: str, args: Args) -> None:
        """Bind public address ``args["ip"]`` to VM ``args["vm"]`` (default: the model's table only)."""
        return None

    def remove_address(self, group: str, args: Args) -> None:
        """Unbind the address ``group/args["name"]`` (default: the model's table only)."""
        return None

    def switch_address(self, address: str, args: Args) -> None:
        """Route ``address`` to VM ``args["vm"]`` from now on (default: the model's table only)."""
        return None

    def live_migrate(self, host: str, args: Args) -> None:
        """Move VM ``args["name"]`` from ``host`` to ``args["dest"]`` onto ``args["volume"]`` (imported
        there). Idempotent: a VM already at the destination and gone from the source is left as it is."""
        name = str(args["name"])
        dest = str(args["dest"])
        here = _vm_of(self.reload(host), host, name)
        there = _vm_of(self.reload(dest), dest, name)
        if here is None:
            if there is not None:
                return
            raise DriverError(f"{self.name}: no VM {name} on {host} to migrate", path=f"{host}/{name}")
        if there is None:
            spec = {**here, "name": name, "volume": args.get("volume", ""), "image": args.get("image", "")}
            self.create_vm(dest, spec)
        self.delete_vm(host, {"name": name})
        self.create_config(host, {"name": name})  # the source's configuration stays until it is released


def _vm_of(inv: Inventory, host: str, name: str) -> dict[str, Any] | None:
    h = inv.get("hosts", {}).get(host)
    if h is None:
        return None
    spec = h["vms"].get(name)
    return None if spec is None else dict(spec)
