"""Discovery of a served fleet: the inventory document of the devices a server has bound (read from each
device through its backend, named as the server's model names them), and the device objects the model
does not know (*unmanaged*: a domain on a managed host, an image in a storage pool, a router network).

A libvirt device is read through the same functions as offline discovery (:mod:`tropic.drivers.discover`)
on the connection the server holds, so discovering the served fleet of an inventory that offline discovery
wrote gives back the same document. A sim device has no node to read: its capacity is the model's.
"""

from __future__ import annotations

from typing import Any

from tropic.drivers.base import Driver
from tropic.drivers.discover import Doc, Facts, read_domains, read_networks, read_node, read_pools
from tropic.drivers.router import RouterDriver
from tropic.errors import DriverError
from tropic.model import Model


def as_router(driver: Driver, model: Model) -> RouterDriver:
    """``driver`` itself when it is a router, else a router around it bound to ``model``."""
    if isinstance(driver, RouterDriver):
        return driver
    return RouterDriver(driver).bind(model, provision=False)


def _kids(model: Model, path: str, kind: str) -> list[str]:
    return sorted(p for p in (f"{path}/{k}" for k in model.kids.get(path, ())) if model.nodes[p].kind == kind)


def _libvirt_conn(drv: Driver, path: str) -> Any:
    connection = getattr(drv, "connection", None)
    return connection(path) if callable(connection) and drv.name == "libvirt" else None


def served_document(driver: Driver, model: Model) -> Doc:
    """The inventory document of the devices ``driver`` drives for ``model`` (call on the controller's
    logical thread, or with a model that holds still)."""
    router = as_router(driver, model)
    doc: Doc = {"regions": [], "hosts": [], "storage": [], "networks": [], "vms": []}
    regions = sorted({*model.kids.get("/compute", ()), *model.kids.get("/storage", ())})
    doc["regions"] = [{"name": r} for r in regions]
    skipped: list[str] = []
    for region in sorted(model.kids.get("/compute", ())):
        for host in _kids(model, f"/compute/{region}", "host"):
            attrs = model.nodes[host].attrs
            kind = router.kind_of(host)
            drv = router.backend(kind)
            name = host.rsplit("/", 1)[1]
            cpus, memory = int(attrs["cpus"]), int(attrs["memory_mib"])
            facts = Facts()
            conn = _libvirt_conn(drv, host)
            if conn is not None:
                _, cpus, memory = read_node(conn, where=host)
                read_domains(conn, facts, where=host)
                vms = facts.vms
            else:
                found = drv.reload(host)["hosts"].get(host, {"vms": {}})["vms"]
                vms = [
                    {"name": n, "vcpus": v["vcpus"], "memory_mib": v["memory_mib"], "state": v["state"]}
                    for n, v in sorted(found.items())
                ]
            skipped += facts.skipped
            entry = {"name": name, "region": region, "driver": kind, "uri": str(attrs.get("uri", ""))}
            doc["hosts"].append({**entry, "cpus": cpus, "memory_mib": memory})
            for v in vms:
                doc["vms"].append({"name": v["name"], "host": name, **{k: v[k] for k in v if k != "name"}})
    for region in sorted(model.kids.get("/storage", ())):
        for san in _kids(model, f"/storage/{region}", "storage_host"):
            attrs = model.nodes[san].attrs
            kind = router.kind_of(san)
            drv = router.backend(kind)
            conn = _libvirt_conn(drv, san)
            facts = Facts()
            if conn is not None:
                read_pools(conn, facts, where=san)
                images = facts.images
            else:
                names = drv.reload(san)["storage"].get(san, {"images": []})["images"]
                sizes = {p.rsplit("/", 1)[1]: model.nodes[p].attrs for p in _kids(model, san, "image")}
                images = [{"name": n, "size_gib": int(sizes.get(n, {}).get("size_gib", 10))} for n in names]
            skipped += facts.skipped
            doc["storage"].append(
                {
                    "name": san.rsplit("/", 1)[1],
                    "region": region,
                    "driver": kind,
                    "uri": str(attrs.get("uri", "")),
                    "images": images,
                }
            )
    routers_on: dict[str, dict[str, str]] = {}  # network -> router -> next hop, as the devices say
    for kind, drv in sorted(router.backends.items()):
        conn = _libvirt_conn(drv, "network")
        if conn is not None:
            facts = Facts()
            read_networks(conn, facts, where=f"{kind} networks")
            for net, found in facts.networks.items():
                for r in found:
                    routers_on.setdefault(net, {})[str(r["name"])] = str(r["next_hop"])
        else:
            for path, r in drv.inventory()["routers"].items():
                _, _, net, name = path.split("/")
                if router.kind_of(path) == kind:
                    routers_on.setdefault(net, {})[name] = str(r.get("next_hop", ""))
    for net in sorted(model.kids.get("/network", ())):
        path = f"/network/{net}"
        kind = str(model.nodes[path].attrs.get("driver", "")) or router.default_kind
        routers = []
        for name, hop in sorted(routers_on.get(net, {}).items()):
            node = model.nodes.get(f"{path}/{name}")
            role = str(node.attrs.get("role", "primary")) if node is not None else "primary"
            routers.append({"name": name, "role": role, "next_hop": hop})
        doc["networks"].append({"name": net, "driver": kind, "routers": routers})
    if skipped:
        doc["skipped"] = skipped
    return doc


def unmanaged(driver: Driver, model: Model) -> list[dict[str, Any]]:
    """Device objects on the bound devices that ``model`` does not know: VMs (domains) on managed hosts,
    images on managed storage hosts, routers. Each: kind, path (where it would be in the model), device,
    detail (what the device says)."""
    router = as_router(driver, model)
    out: list[dict[str, Any]] = []
    inv = router.inventory()
    for host, h in inv["hosts"].items():
        if host not in model.nodes:
            continue
        for name, spec in sorted(h["vms"].items()):
            path = f"{host}/{name}"
            if path not in model.nodes:
                out.append({"kind": "vm", "path": path, "device": host, "detail": dict(spec)})
    for san, s in inv["storage"].items():
        if san not in model.nodes:
            continue
        for name in s["images"]:
            path = f"{san}/{name}"
            if path not in model.nodes:
                out.append({"kind": "image", "path": path, "device": san, "detail": {}})
        for name, spec in sorted(s["volumes"].items()):
            path = f"{san}/{name}"
            if path not in model.nodes:
                out.append({"kind": "volume", "path": path, "device": san, "detail": dict(spec)})
    for path, r in inv["routers"].items():
        if path not in model.nodes:
            out.append({"kind": "router", "path": path, "device": path, "detail": dict(r)})
    return out


def try_served_document(driver: Driver, model: Model) -> tuple[Doc, list[str]]:
    """:func:`served_document`, with a device that does not answer reported instead of raised."""
    try:
        return served_document(driver, model), []
    except DriverError as e:
        return {}, [e.message]
