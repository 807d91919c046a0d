"""The sim's overlay and cross-region live migration: an address table (address path -> VM path) kept
beside the devices (in the sim's file when it has one), and a live migration that takes the pre-copy's
modelled time (``transfer_s`` from the step's arguments, scaled by :attr:`SimGeo.geo_time_scale`: 0 by
default, so tests run at memory speed; 1 plays it in real time)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from tropic.drivers.geo import Args
from tropic.errors import DriverError


class SimGeo:
    """:class:`~tropic.drivers.geo.GeoDriver` on the sim's devices (a base of
    :class:`~tropic.drivers.sim.SimDriver`, whose state and bookkeeping it uses; called under its lock)."""

    hosts: dict[str, dict[str, Any]]
    geo_time_scale: float = 0.0

    if TYPE_CHECKING:
        _db: sqlite3.Connection | None

        def _host(self, host: str) -> dict[str, Any]: ...
        def _mark(self, key: str) -> None: ...

    @property
    def overlay(self) -> dict[str, str]:
        """The overlay's table: address path -> the VM path it reaches."""
        table: dict[str, str] | None = self.__dict__.get("_overlay")
        if table is None:
            table = self.__dict__["_overlay"] = {}
        return table

    def _save_overlay(self) -> None:
        if self._db is not None:
            data = json.dumps(self.overlay, sort_keys=True)
            self._db.execute("INSERT OR REPLACE INTO sim_meta VALUES ('overlay', ?)", (data,))

    def _load_overlay(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM sim_meta WHERE key='overlay'").fetchone()
        if row is not None:
            self.overlay.clear()
            self.overlay.update(json.loads(row[0]))

    def add_address(self, group: str, args: Args) -> None:
        self.overlay[f"{group}/{args['name']}"] = str(args["vm"])
        self._save_overlay()

    def remove_address(self, group: str, args: Args) -> None:
        if self.overlay.pop(f"{group}/{args['name']}", None) is not None:
            self._save_overlay()

    def switch_address(self, address: str, args: Args) -> None:
        if address not in self.overlay:
            raise DriverError(f"sim: no address {address} on the overlay", path=address)
        self.overlay[address] = str(args["vm"])
        self._save_overlay()

    def live_migrate(self, host: str, args: Args) -> None:
        name = str(args["name"])
        dest_path = str(args["dest"])
        src = self._host(host)
        dest = self._host(dest_path)
        spec = src["vms"].get(name)
        if spec is None:
            if name in dest["vms"]:
                return  # already migrated
            raise DriverError(f"sim: no VM {name} on {host} to migrate", path=f"{host}/{name}")
        if name not in dest["configs"]:
            raise DriverError(f"sim: {dest_path} has no configuration for {name}", path=dest_path)
        volume = str(args.get("volume", ""))
        if volume and volume not in dest["volumes"]:
            raise DriverError(f"sim: volume {volume} is not attached to {dest_path}", path=dest_path)
        pause = float(args.get("transfer_s", 0.0)) * self.geo_time_scale
        if pause > 0:
            time.sleep(pause)
        self._mark(f"{host}/{name}")
        self._mark(f"{dest_path}/{name}")
        moved = dict(src["vms"].pop(name))
        moved["volume"] = volume
        moved["image"] = str(args.get("image", moved.get("image", "")))
        dest["vms"][name] = moved
