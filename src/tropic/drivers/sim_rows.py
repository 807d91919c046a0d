"""How the ``sim`` devices lie in their SQLite file: one row per object, so an action writes only what it
changed and its cost does not grow with how much a device holds.

Rows of ``sim_objects`` (key, kind, value as JSON):

- ``host`` at the host's path: its configurations and imported volumes;
- ``vm`` at ``HOST/NAME``: one VM's spec;
- ``san`` at the storage host's path: its images;
- ``volume`` at ``SAN/NAME``: one volume;
- ``router`` at the router's path.

A row's key sorts after its parent's (``HOST`` < ``HOST/NAME``), so reading in key order installs parents
first. Files written before this layout held a host's VMs and a SAN's volumes inside the parent's row; they
are read as they are (:attr:`Rows.legacy`) and rewritten in this layout by the next owner.
"""

from __future__ import annotations

import json
from typing import Any

Devices = dict[str, dict[str, Any]]


class Rows:
    """The rows of one sim's ``hosts``, ``sans`` and ``routers`` (the driver's in-memory state)."""

    def __init__(self, hosts: Devices, sans: Devices, routers: Devices) -> None:
        self.hosts, self.sans, self.routers = hosts, sans, routers
        self.legacy = False  # a row in the old layout was read

    def serialise(self, key: str) -> tuple[str, str] | None:
        """The row at ``key`` as (kind, JSON), or None when the object is gone."""
        if key in self.hosts:
            h = self.hosts[key]
            return "host", json.dumps({"configs": sorted(h["configs"]), "volumes": sorted(h["volumes"])})
        if key in self.sans:
            return "san", json.dumps({"images": sorted(self.sans[key]["images"])})
        if key in self.routers:
            return "router", json.dumps(self.routers[key], sort_keys=True)
        parent, _, name = key.rpartition("/")
        if parent in self.hosts:
            spec = self.hosts[parent]["vms"].get(name)
            return None if spec is None else ("vm", json.dumps(spec, sort_keys=True))
        if parent in self.sans:
            vol = self.sans[parent]["volumes"].get(name)
            return None if vol is None else ("volume", json.dumps(vol, sort_keys=True))
        return None

    def install(self, key: str, kind: str, value: str) -> None:
        """Put one stored row into the in-memory state (its parent first: rows are read in key order)."""
        obj = json.loads(value)
        if kind == "host":
            self.legacy |= "vms" in obj
            self.hosts[key] = {
                "vms": obj.get("vms", {}),
                "configs": set(obj["configs"]),
                "volumes": set(obj["volumes"]),
            }
        elif kind == "san":
            self.legacy |= "volumes" in obj
            self.sans[key] = {"images": set(obj["images"]), "volumes": obj.get("volumes", {})}
        elif kind in ("vm", "volume"):
            parent, _, name = key.rpartition("/")
            devices = self.hosts if kind == "vm" else self.sans
            if parent in devices:
                devices[parent]["vms" if kind == "vm" else "volumes"][name] = obj
        else:
            self.routers[key] = obj

    def keys(self) -> set[str]:
        """Every row's key."""
        out = set(self.hosts) | set(self.sans) | set(self.routers)
        out.update(f"{h}/{n}" for h, spec in self.hosts.items() for n in spec["vms"])
        out.update(f"{s}/{n}" for s, spec in self.sans.items() for n in spec["volumes"])
        return out

    def children(self, key: str) -> list[str]:
        """The keys of the rows under the device at ``key`` (its VMs or volumes)."""
        if key in self.hosts:
            return [f"{key}/{n}" for n in self.hosts[key]["vms"]]
        if key in self.sans:
            return [f"{key}/{n}" for n in self.sans[key]["volumes"]]
        return []


def under(key: str) -> tuple[str, str]:
    """Bounds of the keys strictly under ``key`` (``key/...``), for ``key > ? AND key < ?``."""
    return key + "/", key + "0"  # "0" is the character after "/"


__all__ = ["Rows", "under"]
