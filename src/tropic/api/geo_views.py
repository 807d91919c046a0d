"""Follow-the-sun views of the model: a replicated service's members with their public addresses (what
``tropic describe`` shows for a service) and the image catalog (``tropic image versions``). Plain reads
of a model, run on the controller's logical thread by the routes (:mod:`tropic.api.geo_routes`)."""

from __future__ import annotations

from typing import Any

from tropic.errors import UnknownResource
from tropic.model import Model
from tropic.model.geo import IMAGES, OVERLAY


def members_of(model: Model, service: str) -> list[dict[str, Any]]:
    """The members of the service at ``service``: VM path, region, provider, host and public address
    (empty for a service whose members hold no address, e.g. a psepr overlay's)."""
    node = model.nodes.get(service)
    if node is None or node.kind != "service":
        raise UnknownResource(f"no service at {service}", path=service)
    addresses: dict[str, str] = {}
    group = f"{OVERLAY}/{service.rsplit('/', 1)[1]}"
    if group in model.nodes:
        for addr in model.children(group):
            a = model.nodes[addr].attrs
            addresses[a["member"]] = a["ip"]
    out: list[dict[str, Any]] = []
    for uid in node.attrs.get("members", []):
        path = model.index.by_uid.get(uid)
        row: dict[str, Any] = {"uid": uid, "vm": path or "", "address": addresses.get(uid, "")}
        if path:
            host = path.rsplit("/", 1)[0]
            region = host.rsplit("/", 1)[0]
            rnode = model.nodes.get(region)
            row.update(
                host=host,
                region=region.rsplit("/", 1)[1],
                location=(rnode.attrs.get("location", "") if rnode else ""),
                provider=(rnode.attrs.get("provider", "") if rnode else ""),
                state=model.nodes[path].attrs.get("state", ""),
            )
        out.append(row)
    return out


def catalog(model: Model) -> list[dict[str, Any]]:
    """Every image of the catalog: its latest version, policy, writer and number of versions."""
    if IMAGES not in model.nodes:
        return []
    out = []
    for path in model.children(IMAGES):
        a = model.nodes[path].attrs
        out.append(
            {
                "name": path.rsplit("/", 1)[1],
                "home": a.get("home", ""),
                "policy": a.get("policy", "lazy"),
                "latest": a.get("latest", 0),
                "writer": a.get("writer", ""),
                "versions": len(model.children(path)),
            }
        )
    return out


def versions(model: Model, image: str) -> list[dict[str, Any]]:
    """The versions of catalog image ``image`` (a name), oldest first, with what keeps each in use."""
    from tropic.procedures.images import versions_of

    path = f"{IMAGES}/{image}"
    node = model.nodes.get(path)
    if node is None or node.kind != "geo_image":
        raise UnknownResource(f"no image {image} in the catalog ({path})", path=path)
    return versions_of(model.reader(), path)
