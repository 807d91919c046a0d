"""The sim's fleet actions: hosts, storage hosts, images and routers brought under management and released
(idempotent, like every sim action; a host or storage host that still holds VMs or volumes is refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tropic.drivers.base import Args
from tropic.errors import DriverError


class SimFleet:
    """:class:`~tropic.drivers.base.FleetDriver` on the sim's devices (a base of
    :class:`~tropic.drivers.sim.SimDriver`, whose state and bookkeeping it uses)."""

    hosts: dict[str, dict[str, Any]]
    sans: dict[str, dict[str, Any]]
    routers: dict[str, dict[str, Any]]

    if TYPE_CHECKING:

        def _mark(self, key: str) -> None: ...
        def _san(self, san: str) -> dict[str, Any]: ...

    def add_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        if path not in self.hosts:
            self.hosts[path] = {
                "vms": {},
                "configs": set(args.get("configs") or ()),
                "volumes": set(args.get("volumes") or ()),
            }
            self._mark(path)

    def remove_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        h = self.hosts.get(path)
        if h is None:
            return
        if h["vms"]:
            raise DriverError(f"sim: host {path} still runs VMs {sorted(h['vms'])}", path=path)
        del self.hosts[path]
        self._mark(path)

    def add_storage_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        if path not in self.sans:
            self.sans[path] = {"images": set(), "volumes": {}}
            self._mark(path)

    def remove_storage_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        s = self.sans.get(path)
        if s is None:
            return
        if s["volumes"]:
            raise DriverError(
                f"sim: storage host {path} still holds volumes {sorted(s['volumes'])}", path=path
            )
        del self.sans[path]
        self._mark(path)

    def add_image(self, san: str, args: Args) -> None:
        self._san(san)["images"].add(args["name"])

    def remove_image(self, san: str, args: Args) -> None:
        self._san(san)["images"].discard(args["name"])

    def add_router(self, network: str, args: Args) -> None:
        path = f"{network}/{args['name']}"
        if path not in self.routers:
            self.routers[path] = {"next_hop": args.get("next_hop", "")}
            self._mark(path)

    def remove_router(self, network: str, args: Args) -> None:
        path = f"{network}/{args['name']}"
        if self.routers.pop(path, None) is not None:
            self._mark(path)
