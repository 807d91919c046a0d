"""Comparing one device's part of the model with what the device reports: the findings drift is made of.

Everything here is a pure function of a model and an inventory entry (the shape of
:func:`tropic.model.project`), so the reconciler can compute on the logical thread what it read from the
devices elsewhere. Devices are hosts (their VMs, configurations and volume imports), storage hosts (images
and volumes) and routers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tropic.drivers.base import covers
from tropic.errors import UnknownResource
from tropic.model import ROOT, Model, Node, Value, parent_of
from tropic.model.tree import check_path

DEVICE_KINDS = {"host": "hosts", "storage_host": "storage", "router": "routers"}
VM_ATTRS = ("state", "vcpus", "memory_mib", "image", "volume")
VM_SPEC = ("vcpus", "memory_mib", "image", "volume", "state")  # a VM in an inventory
VOLUME_ATTRS = ("image", "exported")

Entry = dict[str, Any]  # one device's part of an inventory


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference on one device (a :class:`~tropic.reconcile.base.Drift` before it is recorded)."""

    path: str
    attribute: str
    logical: Value
    physical: Value
    kind: str
    device: str
    fence: tuple[str, ...]
    detail: dict[str, Value] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.attribute)


def devices_in(model: Model, scope: str) -> list[str]:
    """The devices whose state covers ``scope``: those at or below it (but hosts declared failed), or the
    one holding it (a VM's host, also for a VM the model does not know). :class:`UnknownResource` when
    nothing there exists."""
    check_path(scope)
    node = model.nodes.get(scope)
    if node is None:
        parent = parent_of(scope)
        holder = model.nodes.get(parent)
        if scope != ROOT and holder is not None and holder.kind in DEVICE_KINDS:
            return [parent]  # a resource only the device knows (an orphan)
        raise UnknownResource(f"no resource at {scope}", path=scope)
    p = scope
    while p != ROOT:  # at or below a device: that device
        n = model.nodes.get(p)
        if n is not None and n.kind in DEVICE_KINDS:
            return [p]
        p = parent_of(p)
    out: list[str] = []
    stack = [scope]
    while stack:
        p = stack.pop()
        n = model.nodes.get(p)
        if n is None:
            continue
        if n.kind in DEVICE_KINDS:
            # A host declared failed answers nothing, and its VMs are being rebuilt elsewhere: a scan of
            # a wider scope leaves it out (no drift, no fence in the rebuilds' way); naming it reads it.
            if not n.attrs.get("failed"):
                out.append(p)
            continue  # a device's children are part of it
        stack.extend(reversed(model.children(p)))
    return out


def kind_of(model: Model, device: str) -> str:
    node = model.nodes.get(device)
    return "" if node is None else node.kind


def logical_entry(model: Model, device: str) -> Entry | None:
    """The device's part of :func:`tropic.model.project`: what the model says the device holds."""
    node = model.nodes.get(device)
    if node is None:
        return None
    a = node.attrs
    if node.kind == "host":
        vms: dict[str, Any] = {}
        for child in model.children(device):
            c = model.nodes[child]
            if c.kind == "vm":
                vms[child.rsplit("/", 1)[1]] = {k: c.attrs[k] for k in VM_SPEC}
        return {"vms": vms, "configs": sorted(a["configs"]), "volumes": sorted(a["volumes"])}
    if node.kind == "storage_host":
        images: list[str] = []
        volumes: dict[str, Any] = {}
        for child in model.children(device):
            c = model.nodes[child]
            name = child.rsplit("/", 1)[1]
            if c.kind == "image":
                images.append(name)
            elif c.kind == "volume":
                volumes[name] = {"image": c.attrs["image"], "exported": c.attrs["exported"]}
        return {"images": sorted(images), "volumes": volumes}
    if node.kind == "router":
        return {"next_hop": a["next_hop"]}
    return None


def physical_entry(inventory: dict[str, dict[str, Any]], kind: str, device: str) -> Entry | None:
    section = DEVICE_KINDS.get(kind)
    if section is None:
        return None
    entry = inventory.get(section, {}).get(device)
    return None if entry is None else dict(entry)


def identity(model: Model, device: str) -> tuple[Any, ...]:
    """What changes whenever the model's part of ``device`` changes: its nodes (replaced, never mutated,
    when a transaction or a reload applies) and its children's names."""
    nodes: list[Node | None] = [model.nodes.get(device)]
    names = frozenset(model.kids.get(device, ()))
    for name in sorted(names):
        nodes.append(model.nodes.get(f"{device}/{name}"))
    return (names, *nodes)


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Are two :func:`identity` tuples of the same model state (nodes compared by identity)?"""
    return len(a) == len(b) and a[0] == b[0] and all(x is y for x, y in zip(a[1:], b[1:], strict=True))


def compare(kind: str, device: str, logical: Entry | None, physical: Entry | None) -> list[Finding]:
    """Every difference between the model's and the device's view of ``device``."""
    if logical is None and physical is None:
        return []
    if logical is None or physical is None:
        return [Finding(device, "exists", logical is not None, physical is not None, kind, device, (device,))]
    if kind == "host":
        return _host(device, logical, physical)
    if kind == "storage_host":
        return _san(device, logical, physical)
    if logical.get("next_hop") != physical.get("next_hop"):
        return [
            Finding(
                device, "next_hop", logical.get("next_hop"), physical.get("next_hop"), kind, device, (device,)
            )
        ]
    return []


def _host(host: str, lg: Entry, ph: Entry) -> list[Finding]:
    out: list[Finding] = []
    lvms: dict[str, Any] = lg["vms"]
    pvms: dict[str, Any] = ph.get("vms", {})
    for name in sorted(set(lvms) | set(pvms)):
        path = f"{host}/{name}"
        lv, pv = lvms.get(name), pvms.get(name)
        if lv is None or pv is None:
            out.append(
                Finding(path, "exists", lv is not None, pv is not None, "vm", host, (path,), _plain(pv))
            )
            continue
        for attr in VM_ATTRS:
            if lv.get(attr) != pv.get(attr):
                out.append(Finding(path, attr, lv.get(attr), pv.get(attr), "vm", host, (path,)))
    lcfg, pcfg = set(lg["configs"]), set(ph.get("configs", ()))
    for name in sorted(lcfg ^ pcfg):
        path = f"{host}/{name}"
        out.append(Finding(path, "config", name in lcfg, name in pcfg, "vm", host, (path,)))
    lvol, pvol = sorted(lg["volumes"]), sorted(ph.get("volumes", ()))
    if lvol != pvol:
        differing = tuple(sorted(set(lvol) ^ set(pvol)))
        out.append(Finding(host, "volumes", lvol, pvol, "host", host, differing))
    return out


def _san(san: str, lg: Entry, ph: Entry) -> list[Finding]:
    out: list[Finding] = []
    limg, pimg = set(lg["images"]), set(ph.get("images", ()))
    for name in sorted(limg ^ pimg):
        path = f"{san}/{name}"
        out.append(Finding(path, "exists", name in limg, name in pimg, "image", san, (path,)))
    lvols: dict[str, Any] = lg["volumes"]
    pvols: dict[str, Any] = ph.get("volumes", {})
    for name in sorted(set(lvols) | set(pvols)):
        path = f"{san}/{name}"
        lv, pv = lvols.get(name), pvols.get(name)
        if lv is None or pv is None:
            out.append(
                Finding(path, "exists", lv is not None, pv is not None, "volume", san, (path,), _plain(pv))
            )
            continue
        for attr in VOLUME_ATTRS:
            if lv.get(attr) != pv.get(attr):
                out.append(Finding(path, attr, lv.get(attr), pv.get(attr), "volume", san, (path,)))
    return out


def _plain(spec: Any) -> dict[str, Value] | None:
    return None if spec is None else dict(spec)


def unreachable(kind: str, device: str) -> Finding:
    return Finding(device, "reachable", True, False, kind, device, (device,))


def in_scope(scope: str, findings: Iterable[Finding]) -> list[Finding]:
    """The findings at or below ``scope`` (a VM's scope leaves out its host's imports)."""
    return [f for f in findings if covers(scope, f.path)]


def overlaps(paths: Iterable[str], busy: Iterable[str]) -> bool:
    """Does any of ``paths`` lie at, above or below a ``busy`` path (a lock covers its subtree)?"""
    held = list(busy)
    return any(covers(b, p) or covers(p, b) for p in paths for b in held)
