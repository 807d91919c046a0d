"""The sim's fleet actions: hosts, storage hosts, images and routers brought under management and released
(see :class:`tropic.drivers.base.FleetDriver`). Called under the sim's lock, like its other actions;
idempotent."""

from __future__ import annotations

from typing import Any

from tropic.drivers.base import Args
from tropic.errors import DriverError


class SimFleet:
    """Mixed into :class:`~tropic.drivers.sim.SimDriver`, whose device dictionaries these change."""

    hosts: dict[str, dict[str, Any]]
    sans: dict[str, dict[str, Any]]
    routers: dict[str, dict[str, Any]]

    def _mark(self, key: str) -> None:
        raise NotImplementedError

    def _san(self, san: str) -> dict[str, Any]:
        raise NotImplementedError

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
