"""Inventories: the physical state a model implies, compared with what devices report.

An inventory is plain data: ``{"hosts": {path: {"vms": {name: spec}, "configs": [...], "volumes": [...]}},
"storage": {path: {"images": [...], "volumes": {name: {"image", "exported"}}}}, "routers": {path:
{"next_hop"}}}``. Drivers report one (``Driver.inventory``), :func:`project` derives one from the model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from tropic.model.base import Violation
from tropic.model.tree import ROOT, Model, View, parent_of

Inventory = dict[str, dict[str, Any]]


def project(model: Model) -> Inventory:
    """The physical state the committed model implies, in the shape drivers report."""
    hosts: dict[str, Any] = {}
    storage: dict[str, Any] = {}
    routers: dict[str, Any] = {}
    for path, node in model.nodes.items():
        kind = node.kind
        a = node.attrs
        if kind == "host":
            h = hosts.setdefault(path, {"vms": {}})
            h["configs"] = sorted(a["configs"])
            h["volumes"] = sorted(a["volumes"])
        elif kind == "vm":
            h = hosts.setdefault(parent_of(path), {"vms": {}})
            h["vms"][path.rsplit("/", 1)[1]] = {
                "vcpus": a["vcpus"],
                "memory_mib": a["memory_mib"],
                "image": a["image"],
                "volume": a["volume"],
                "state": a["state"],
            }
        elif kind == "storage_host":
            storage.setdefault(path, {"images": [], "volumes": {}})
        elif kind == "image":
            s = storage.setdefault(parent_of(path), {"images": [], "volumes": {}})
            s["images"].append(path.rsplit("/", 1)[1])
        elif kind == "volume":
            s = storage.setdefault(parent_of(path), {"images": [], "volumes": {}})
            s["volumes"][path.rsplit("/", 1)[1]] = {"image": a["image"], "exported": a["exported"]}
        elif kind == "router":
            routers[path] = {"next_hop": a["next_hop"]}
    for s in storage.values():
        s["images"].sort()
    return {"hosts": hosts, "storage": storage, "routers": routers}


def _covered(path: str, fenced: set[str]) -> bool:
    p = path
    while True:
        if p in fenced:
            return True
        if p == ROOT:
            return False
        p = parent_of(p)


def without(inventory: Inventory, fenced: Iterable[str]) -> Inventory:
    """A copy of ``inventory`` without fenced resources (they are excluded from consistency checks)."""
    fence = set(fenced)
    if not fence:
        return inventory
    out = copy.deepcopy(inventory)
    for host in list(out["hosts"]):
        if _covered(host, fence):
            del out["hosts"][host]
            continue
        h = out["hosts"][host]
        for name in list(h["vms"]):
            if _covered(f"{host}/{name}", fence):
                del h["vms"][name]
                h["configs"] = [c for c in h["configs"] if c != name]
        h["volumes"] = [v for v in h["volumes"] if not _covered(v, fence)]
    for san in list(out["storage"]):
        if _covered(san, fence):
            del out["storage"][san]
            continue
        vols = out["storage"][san]["volumes"]
        for name in list(vols):
            if _covered(f"{san}/{name}", fence):
                del vols[name]
    for r in list(out["routers"]):
        if _covered(r, fence):
            del out["routers"][r]
    return out


def orphans(logical: Inventory, physical: Inventory) -> list[str]:
    """Device objects (VMs, volumes, configs, imports) that the logical model does not know about."""
    out: list[str] = []
    for host, h in physical["hosts"].items():
        lh = logical["hosts"].get(host, {"vms": {}, "configs": [], "volumes": []})
        out += [f"vm {host}/{n}" for n in h["vms"] if n not in lh["vms"]]
        out += [f"config {host}/{c}" for c in h["configs"] if c not in lh["configs"]]
        out += [f"import {host}:{v}" for v in h["volumes"] if v not in lh["volumes"]]
    for san, s in physical["storage"].items():
        ls = logical["storage"].get(san, {"volumes": {}})
        out += [f"volume {san}/{n}" for n in s["volumes"] if n not in ls["volumes"]]
    return sorted(out)


def differences(logical: Inventory, physical: Inventory, limit: int = 20) -> list[str]:
    """Human-readable differences between the model's projection and the devices (at most ``limit``)."""
    out: list[str] = []
    for section in ("hosts", "storage", "routers"):
        lsec, psec = logical.get(section, {}), physical.get(section, {})
        for path in sorted(set(lsec) | set(psec)):
            if lsec.get(path) != psec.get(path):
                out.append(f"{section} {path}: model={lsec.get(path)!r} device={psec.get(path)!r}")
                if len(out) >= limit:
                    return out
    return out


def audit(model: Model) -> list[Violation]:
    """Evaluate every constraint of every resource (a full check, for tests and ``tropic check``)."""
    return View(model, readonly=True).evaluate(list(model.nodes))
