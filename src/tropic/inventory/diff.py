"""The difference between an inventory and a model, per resource, as the procedure calls that close it.

The model is given as a :data:`Tree` (path -> kind and attributes): the committed model, or the subtrees
the API returns. Each :class:`Change` is one line of a plan (``+`` add, ``~`` change, ``-`` remove) with
the calls that make it; a call's ``phase`` orders the apply: additions top-down, next hops, VMs, then
removals bottom-up. Differences no procedure can make (an image's size, a router's role, a network's
CIDR) are listed with the reason and no call.

VMs: the file's ``vms`` are compared too, but their changes are made only when asked (``vms=True``:
spawn the missing, destroy the extra, resize, move, start or stop); otherwise they are shown as not applied.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tropic.inventory.build import host_path, storage_path
from tropic.inventory.check import host_key
from tropic.inventory.load import Inventory
from tropic.inventory.schema import HostSpec, JobSpec, RegionSpec, StorageSpec

Tree = Mapping[str, tuple[str, Mapping[str, Any]]]

# Phases of the apply: what must exist first goes first; removals run bottom-up after everything else.
ADD_REGION, ADD_HOST, ADD_IMAGE, ADD_NETWORK, ADD_ROUTER, NEXT_HOP = 0, 1, 2, 3, 4, 5
VM_REMOVE, VM_CHANGE, VM_ADD = 6, 7, 8
RM_ROUTER, RM_NETWORK, RM_IMAGE, RM_STORAGE, RM_HOST, RM_REGION = 9, 10, 11, 12, 13, 14


@dataclass(frozen=True, slots=True)
class Call:
    phase: int
    procedure: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"procedure": self.procedure, "args": self.args}


@dataclass(slots=True)
class Change:
    """One resource's difference: ``op`` is ``+``, ``~`` or ``-``; ``note`` says why it is not applied."""

    op: str
    path: str
    kind: str
    detail: str
    calls: list[Call] = field(default_factory=list)
    note: str = ""

    @property
    def applicable(self) -> bool:
        return bool(self.calls) and not self.note

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "path": self.path,
            "kind": self.kind,
            "detail": self.detail,
            "applied": self.applicable,
            "note": self.note,
            "calls": [c.to_dict() for c in self.calls],
        }


def tree_of_model(model: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """A :class:`~tropic.model.Model`'s nodes as a tree."""
    return {p: (n.kind, n.attrs) for p, n in model.nodes.items()}


def _children(tree: Tree, parent: str, kind: str) -> dict[str, Mapping[str, Any]]:
    prefix = parent.rstrip("/") + "/"
    return {
        p[len(prefix) :]: attrs
        for p, (k, attrs) in tree.items()
        if k == kind and p.startswith(prefix) and "/" not in p[len(prefix) :]
    }


def _labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":")) if labels else ""


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, str):
        return repr(value)
    return (
        str(value).lower()
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def _changed(have: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``want`` that differ from ``have`` (a missing setting is its default)."""
    out: dict[str, Any] = {}
    for key, value in want.items():
        current = have.get(key)
        if isinstance(value, float) or isinstance(current, float):
            if current is None or abs(float(current) - float(value)) > 1e-9:
                out[key] = value
        elif current != value and not (current is None and value in ("", {}, False)):
            out[key] = value
    return out


def _describe(have: Mapping[str, Any], changes: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {_show(have.get(k))} -> {_show(v)}" for k, v in changes.items())


def diff(inv: Inventory, tree: Tree, *, vms: bool = False, procedures: Collection[str] = ()) -> list[Change]:
    """What it takes for the model ``tree`` to match ``inv``, resource by resource, in file order.
    ``procedures``: what the server runs beyond the fleet procedures (``cordon_host`` and
    ``uncordon_host``, when it has them, make ``cordoned`` match)."""
    out: list[Change] = []
    fleet = inv.fleet
    out += _regions(fleet.regions, tree)
    out += _hosts(fleet.hosts, tree, procedures)
    out += _storage(fleet.storage, tree)
    out += _networks(inv, tree)
    out += _vms(inv, tree, vms)
    out += _removals(inv, tree, vms)
    out += jobs_diff(inv, tree)
    return out


def _region_settings(r: RegionSpec) -> dict[str, Any]:
    return {"location": r.location, "timezone": r.timezone, "provider": r.provider, "labels": dict(r.labels)}


def _regions(regions: list[RegionSpec], tree: Tree) -> list[Change]:
    out: list[Change] = []
    for r in regions:
        path = f"/compute/{r.name}"
        have = tree.get(path, tree.get(f"/storage/{r.name}"))
        want = _region_settings(r)
        if have is None or f"/compute/{r.name}" not in tree or f"/storage/{r.name}" not in tree:
            args = {**{k: v for k, v in want.items() if k != "labels"}, "labels": _labels(r.labels)}
            detail = f"region, location {r.location or '-'}" + (
                f", timezone {r.timezone}" if r.timezone else ""
            )
            out.append(
                Change(
                    "+", path, "region", detail, [Call(ADD_REGION, "add_region", {"name": r.name, **args})]
                )
            )
            continue
        changes = _changed(have[1], want)
        if changes:
            call = Call(ADD_REGION, "configure_region", {"region": r.name, "changes": json.dumps(changes)})
            out.append(Change("~", path, "region", _describe(have[1], changes), [call]))
    return out


def host_settings(h: HostSpec) -> dict[str, Any]:
    """The settings ``configure_host`` can change that the file gives (capacity only when given)."""
    out: dict[str, Any] = {
        "cpu_overcommit": float(h.cpu_overcommit),
        "uri": h.uri,
        "driver": h.driver,
        "failure_domain": h.failure_domain,
        "labels": dict(h.labels),
    }
    if h.cpus is not None:
        out["cpus"] = h.cpus
    if h.memory_mib is not None:
        out["memory_mib"] = h.memory_mib
    return out


def _hosts(hosts: list[HostSpec], tree: Tree, procedures: Collection[str]) -> list[Change]:
    out: list[Change] = []
    for h in hosts:
        path = host_path(h.region, h.name)
        have = tree.get(path)
        want = host_settings(h)
        if have is None:
            detail = f"host, {h.cpus or '?'} cpus, {h.memory_mib or '?'} MiB" + (
                f", {h.driver}" if h.driver else ""
            )
            change = Change("+", path, "host", detail)
            if h.cpus is None or h.memory_mib is None:
                change.note = "give cpus and memory_mib: a running server adds a host with its capacity"
            else:
                args = {"region": h.region, "name": h.name, **want, "labels": _labels(h.labels)}
                args["cordoned"] = h.cordoned
                change.calls.append(Call(ADD_HOST, "add_host", args))
            out.append(change)
            continue
        changes = _changed(have[1], want)
        if changes:
            call = Call(ADD_HOST, "configure_host", {"host": path, "changes": json.dumps(changes)})
            out.append(Change("~", path, "host", _describe(have[1], changes), [call]))
        if bool(have[1].get("cordoned", False)) != h.cordoned:
            detail = f"cordoned: {_show(bool(have[1].get('cordoned')))} -> {_show(h.cordoned)}"
            proc = "cordon_host" if h.cordoned else "uncordon_host"
            if proc in procedures:
                out.append(Change("~", path, "host", detail, [Call(ADD_HOST, proc, {"host": path})]))
            else:
                out.append(Change("~", path, "host", detail, note=f"the server has no {proc} procedure"))
    return out


def _storage(storage: list[StorageSpec], tree: Tree) -> list[Change]:
    out: list[Change] = []
    for s in storage:
        path = storage_path(s.region, s.name)
        have = tree.get(path)
        want = {"capacity_gib": s.capacity_gib, "uri": s.uri, "driver": s.driver, "labels": dict(s.labels)}
        if have is None:
            args = {"region": s.region, "name": s.name, **want, "labels": _labels(s.labels)}
            detail = f"storage host, {s.capacity_gib} GiB" + (f", {s.driver}" if s.driver else "")
            out.append(Change("+", path, "storage_host", detail, [Call(ADD_HOST, "add_storage_host", args)]))
            images: Mapping[str, Mapping[str, Any]] = {}
        else:
            changes = _changed(have[1], want)
            if changes:
                call = Call(
                    ADD_HOST, "configure_storage_host", {"storage_host": path, "changes": json.dumps(changes)}
                )
                out.append(Change("~", path, "storage_host", _describe(have[1], changes), [call]))
            images = _children(tree, path, "image")
        for img in s.images:
            ipath = f"{path}/{img.name}"
            if img.name not in images:
                call = Call(
                    ADD_IMAGE, "add_image", {"storage_host": path, "name": img.name, "size_gib": img.size_gib}
                )
                out.append(Change("+", ipath, "image", f"image, {img.size_gib} GiB", [call]))
            elif images[img.name].get("size_gib") != img.size_gib:
                detail = f"size_gib: {images[img.name].get('size_gib')} -> {img.size_gib}"
                out.append(Change("~", ipath, "image", detail, note="an image's size cannot be changed"))
    return out


def _networks(inv: Inventory, tree: Tree) -> list[Change]:
    out: list[Change] = []
    for n in inv.fleet.networks:
        path = f"/network/{n.name}"
        have = tree.get(path)
        if have is None:
            call = Call(ADD_NETWORK, "add_network", {"name": n.name, "cidr": n.cidr, "driver": n.driver})
            out.append(Change("+", path, "net", f"network {n.cidr or ''}".rstrip(), [call]))
            routers: Mapping[str, Mapping[str, Any]] = {}
        else:
            changes = _changed(have[1], {"cidr": n.cidr, "driver": n.driver})
            if changes:
                out.append(
                    Change(
                        "~",
                        path,
                        "net",
                        _describe(have[1], changes),
                        note="a network's settings cannot be changed",
                    )
                )
            routers = _children(tree, path, "router")
        for r in n.routers:
            rpath = f"{path}/{r.name}"
            hop = f"{path}/{r.next_hop}" if r.next_hop else ""
            driver = r.driver or n.driver
            current = routers.get(r.name)
            if current is None:
                change = Change(
                    "+", rpath, "router", f"router, {r.role}" + (f", next hop {r.next_hop}" if hop else "")
                )
                args = {"network": n.name, "name": r.name, "role": r.role, "driver": driver}
                change.calls.append(Call(ADD_ROUTER, "add_router", args))
                if hop:
                    change.calls.append(Call(NEXT_HOP, "set_next_hop", {"router": rpath, "next_hop": hop}))
                out.append(change)
                continue
            if current.get("next_hop", "") != hop:
                call = Call(NEXT_HOP, "set_next_hop", {"router": rpath, "next_hop": hop})
                detail = f"next_hop: {_show(current.get('next_hop', ''))} -> {_show(hop)}"
                out.append(Change("~", rpath, "router", detail, [call]))
            fixed = _changed(current, {"role": r.role, "driver": driver})
            if fixed:
                out.append(
                    Change(
                        "~",
                        rpath,
                        "router",
                        _describe(current, fixed),
                        note="a router's role and driver cannot be changed",
                    )
                )
    return out


def _vms(inv: Inventory, tree: Tree, enabled: bool) -> list[Change]:
    out: list[Change] = []
    fleet = inv.fleet
    actual = {p: attrs for p, (k, attrs) in tree.items() if k == "vm"}
    by_region: dict[tuple[str, str], str] = {}
    for p in actual:
        parts = p.split("/")  # "", compute, region, host, vm
        by_region[(parts[2], parts[4])] = p
    skip = "" if enabled else "VMs change only with --vms"
    for vm in fleet.vms:
        key = host_key(fleet, vm.host)
        if key is None:  # refused when the file was loaded
            continue
        region, host = key
        hpath = host_path(region, host)
        path = f"{hpath}/{vm.name}"
        have_path = by_region.get((region, vm.name))
        if have_path is None:
            change = Change("+", path, "vm", f"vm, {vm.vcpus} vcpus, {vm.memory_mib} MiB", note=skip)
            if vm.image:
                san, _, image = vm.image.partition("/")
                args = {
                    "host": hpath,
                    "name": vm.name,
                    "image": f"{storage_path(region, san)}/{image}",
                    "vcpus": vm.vcpus,
                    "memory_mib": vm.memory_mib,
                }
                change.calls.append(Call(VM_ADD, "spawn_vm", args))
                if vm.state == "stopped":
                    change.calls.append(Call(VM_ADD, "stop_vm", {"vm": path}))
            else:
                change.note = change.note or "a VM without an image cannot be created by the inventory"
            out.append(change)
            continue
        have = actual[have_path]
        if have_path != path:
            call = Call(VM_CHANGE, "migrate_vm", {"vm": have_path, "dest": hpath})
            out.append(
                Change("~", have_path, "vm", f"host: {have_path.rsplit('/', 2)[1]} -> {host}", [call], skip)
            )
        if (have.get("vcpus"), have.get("memory_mib")) != (vm.vcpus, vm.memory_mib):
            call = Call(VM_CHANGE, "resize_vm", {"vm": path, "vcpus": vm.vcpus, "memory_mib": vm.memory_mib})
            old = f"{have.get('vcpus')} vcpus {have.get('memory_mib')} MiB"
            detail = f"size: {old} -> {vm.vcpus} vcpus {vm.memory_mib} MiB"
            out.append(Change("~", path, "vm", detail, [call], skip))
        if have.get("state") != vm.state:
            proc = "start_vm" if vm.state == "running" else "stop_vm"
            call = Call(VM_CHANGE, proc, {"vm": path})
            out.append(Change("~", path, "vm", f"state: {have.get('state')} -> {vm.state}", [call], skip))
    return out


def _removals(inv: Inventory, tree: Tree, vms: bool) -> list[Change]:
    """What the model has and the file does not: removed bottom-up (VMs only with ``--vms``)."""
    fleet = inv.fleet
    out: list[Change] = []
    want_regions = {r.name for r in fleet.regions}
    want_hosts = {host_path(h.region, h.name) for h in fleet.hosts}
    want_storage = {storage_path(s.region, s.name): {i.name for i in s.images} for s in fleet.storage}
    want_nets = {n.name: {r.name for r in n.routers} for n in fleet.networks}
    listed_vms = set()
    for vm in fleet.vms:
        key = host_key(fleet, vm.host)
        if key is not None:
            listed_vms.add((key[0], vm.name))
    for path, (kind, attrs) in sorted(tree.items()):
        parts = path.split("/")
        if kind == "vm" and (attrs.get("labels") or {}).get("job"):
            continue  # a replicated job's replica: its job owns it (see jobs_diff)
        if kind == "vm" and (parts[2], parts[4]) not in listed_vms and fleet.vms:
            call = Call(VM_REMOVE, "destroy_vm", {"vm": path})
            out.append(Change("-", path, "vm", "vm", [call], "" if vms else "VMs change only with --vms"))
        elif kind == "router" and parts[3] not in want_nets.get(parts[2], set()):
            change = Change("-", path, "router", "router")
            if attrs.get("next_hop"):
                change.calls.append(Call(NEXT_HOP, "set_next_hop", {"router": path, "next_hop": ""}))
            change.calls.append(Call(RM_ROUTER, "remove_router", {"router": path}))
            out.append(change)
        elif kind == "net" and parts[2] not in want_nets:
            out.append(
                Change("-", path, "net", "network", [Call(RM_NETWORK, "remove_network", {"name": parts[2]})])
            )
        elif kind == "image" and parts[4] not in want_storage.get("/".join(parts[:4]), set()):
            out.append(Change("-", path, "image", "image", [Call(RM_IMAGE, "remove_image", {"image": path})]))
        elif kind == "storage_host" and path not in want_storage:
            out.append(
                Change(
                    "-",
                    path,
                    "storage_host",
                    "storage host",
                    [Call(RM_STORAGE, "remove_storage_host", {"storage_host": path})],
                )
            )
        elif kind == "host" and path not in want_hosts:
            held = len(_children(tree, path, "vm"))
            change = Change(
                "-",
                path,
                "host",
                "host" + (f" (holds {held} VMs: refused until they are gone)" if held else ""),
            )
            change.calls.append(Call(RM_HOST, "remove_host", {"host": path}))
            out.append(change)
        elif (
            kind == "region"
            and parts[2] not in want_regions
            # one change per region: its /compute node, or its /storage node when it has no other
            and (parts[1] == "compute" or f"/compute/{parts[2]}" not in tree)
        ):
            call = Call(RM_REGION, "remove_region", {"name": parts[2]})
            out.append(Change("-", path, "region", "region", [call]))
    return out


def job_args(job: JobSpec) -> dict[str, Any]:
    """``create_job``'s arguments for a job of the file (the server adds its ZooKeeper)."""
    return {
        "name": job.name,
        "program": json.dumps(job.program),
        "replicas": job.replicas,
        "failure_domain": job.failure_domain,
        "vcpus": job.vcpus,
        "memory_mib": job.memory_mib,
        "region": job.region,
    }


def jobs_diff(inv: Inventory, tree: Tree) -> list[Change]:
    """Jobs of the file the model lacks (``create_job``, after the VMs), jobs of the model the file does
    not list when it lists jobs at all (``delete_job``, before the VMs), and jobs whose declaration
    differs (listed, not changed in place: delete and declare again)."""
    out: list[Change] = []
    have = {p.rsplit("/", 1)[1]: attrs for p, (k, attrs) in tree.items() if k == "job"}
    for job in inv.fleet.jobs:
        path = f"/jobs/{job.name}"
        cur = have.get(job.name)
        if cur is None:
            detail = (
                f"job, {job.replicas} replicas in distinct {job.failure_domain}s: {' '.join(job.program)}"
            )
            out.append(Change("+", path, "job", detail, [Call(VM_ADD, "create_job", job_args(job))]))
            continue
        want = {
            "program": list(job.program),
            "replicas": job.replicas,
            "failure_domain": job.failure_domain,
            "vcpus": job.vcpus,
            "memory_mib": job.memory_mib,
            "region": job.region,
        }
        changed = {k: v for k, v in want.items() if cur.get(k) != v}
        if changed:
            note = "a job is not changed in place: delete it and declare it again"
            out.append(Change("~", path, "job", _describe(cur, changed), note=note))
    listed = {j.name for j in inv.fleet.jobs}
    for name in sorted(have):
        if inv.fleet.jobs and name not in listed:
            out.append(
                Change("-", f"/jobs/{name}", "job", "job", [Call(VM_REMOVE, "delete_job", {"job": name})])
            )
    return out


def calls_in_order(changes: list[Change]) -> list[tuple[Change, Call]]:
    """The calls an apply submits, in phase order (stable: file order within a phase)."""
    todo = [(c, call) for c in changes if c.applicable for call in c.calls]
    return sorted(todo, key=lambda item: item[1].phase)
