"""The fleet procedures: bring regions, hosts, storage hosts, images, networks and routers under management,
change their settings, and release them. ``tropic inventory apply`` runs them, one transaction per change.

Regions and networks are named (a region is both ``/compute/<name>`` and ``/storage/<name>``); everything
else is given by path. Arguments are scalars: ``labels`` is a JSON object (``{"tier": "web"}``) or
``k=v,k2=v2``; ``changes`` is a JSON object of the settings to change (``{"cpus": 32, "labels": {}}``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from tropic.errors import InvalidArguments, ModelError
from tropic.model import (
    ComputeRoot,
    Host,
    Image,
    Network,
    NetworkRoot,
    Region,
    Router,
    StorageHost,
    StorageRoot,
    View,
)
from tropic.model.base import Value
from tropic.model.schema import HOST_SETTABLE, REGION_SETTABLE, STORAGE_SETTABLE
from tropic.procedures.base import Name, ProcedureFn

DRIVER_KINDS = ("sim", "libvirt")


def parse_labels(text: str, where: str = "labels") -> dict[str, str]:
    """Labels given as a JSON object of strings, or as ``k=v,k2=v2`` (empty: none)."""
    raw = text.strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InvalidArguments(f"{where}: not a JSON object: {e.msg}") from None
        return check_labels(data, where)
    out: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArguments(f"{where}: expected k=v,k2=v2 or a JSON object, got {item!r}")
        if key.strip() in out:
            raise InvalidArguments(f"{where}: label {key.strip()!r} given twice")
        out[key.strip()] = value.strip()
    return out


def check_labels(data: Any, where: str = "labels") -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InvalidArguments(f"{where}: labels must map strings to strings, got {data!r}")
    return dict(data)


def _driver(kind: str, where: str) -> str:
    if kind and kind not in DRIVER_KINDS:
        raise InvalidArguments(f"{where}: unknown driver {kind!r}; use one of {', '.join(DRIVER_KINDS)}")
    return kind


def parse_changes(text: str, settable: tuple[str, ...], where: str) -> dict[str, Value]:
    """A JSON object of settings to change, each one of ``settable`` (labels: strings to strings)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArguments(f"{where}: changes must be a JSON object: {e.msg}") from None
    if not isinstance(data, dict) or not data:
        raise InvalidArguments(f"{where}: changes must be a non-empty JSON object of settings")
    unknown = sorted(set(data) - set(settable))
    if unknown:
        raise InvalidArguments(f"{where}: cannot change {unknown}; settable: {list(settable)}")
    if "labels" in data:
        data["labels"] = check_labels(data["labels"], f"{where}: labels")
    if "driver" in data:
        _driver(data["driver"], where)
    return dict(data)


# --- regions ---------------------------------------------------------------------------------------------
def add_region(
    view: View,
    *,
    name: Annotated[str, Name()],
    location: str = "",
    timezone: str = "",
    provider: str = "",
    labels: str = "",
) -> None:
    """Add region ``name`` under /compute and /storage (where it is missing)."""
    tags = parse_labels(labels)
    added = 0
    for root in (view.get("/compute", ComputeRoot), view.get("/storage", StorageRoot)):
        if not view.exists(f"{root.path}/{name}"):
            root.add_region(name=name, location=location, timezone=timezone, provider=provider, labels=tags)
            added += 1
    if not added:
        raise ModelError(f"region {name} already exists", path=f"/compute/{name}")


def configure_region(view: View, *, region: str, changes: str) -> None:
    """Change a region's location, timezone, provider or labels (under /compute and /storage)."""
    what = parse_changes(changes, REGION_SETTABLE, f"region {region}")
    for root in ("/compute", "/storage"):
        if view.exists(f"{root}/{region}"):
            view.get(f"{root}/{region}", Region).configure(**what)


def remove_region(view: View, *, name: str) -> None:
    """Release region ``name`` (refused while hosts or storage hosts remain in it)."""
    found = False
    for root in (view.get("/compute", ComputeRoot), view.get("/storage", StorageRoot)):
        if view.exists(f"{root.path}/{name}"):
            root.remove_region(name=name)
            found = True
    if not found:
        raise ModelError(f"no region {name}", path=f"/compute/{name}")


# --- compute hosts ---------------------------------------------------------------------------------------
def add_host(
    view: View,
    *,
    region: str,
    name: Annotated[str, Name()],
    cpus: int,
    memory_mib: int,
    cpu_overcommit: float = 4.0,
    uri: str = "",
    driver: str = "",
    failure_domain: str = "",
    labels: str = "",
    cordoned: bool = False,
) -> None:
    """Bring hypervisor host ``name`` of region ``region`` under management (``driver``: sim or libvirt,
    empty for the server's; ``uri``: its device connection)."""
    where = f"/compute/{region}/{name}"
    view.get(f"/compute/{region}", Region).add_host(
        name=name,
        cpus=cpus,
        memory_mib=memory_mib,
        cpu_overcommit=cpu_overcommit,
        uri=uri,
        driver=_driver(driver, where),
        failure_domain=failure_domain,
        labels=parse_labels(labels, f"{where}: labels"),
        cordoned=cordoned,
    )


def configure_host(view: View, *, host: str, changes: str) -> None:
    """Change a host's settings, e.g. ``changes='{"cpus": 32, "labels": {"tier": "web"}}'``."""
    h = view.get(host, Host)
    h.configure(**parse_changes(changes, HOST_SETTABLE, host))


def remove_host(view: View, *, host: str) -> None:
    """Release a host (refused while it holds VMs, configurations or imported volumes)."""
    h = view.get(host, Host)
    view.get(h.parent_path, Region).remove_host(name=h.name)


# --- storage ---------------------------------------------------------------------------------------------
def add_storage_host(
    view: View,
    *,
    region: str,
    name: Annotated[str, Name()],
    capacity_gib: int = 100_000,
    uri: str = "",
    driver: str = "",
    labels: str = "",
) -> None:
    """Bring storage host ``name`` of region ``region`` under management."""
    where = f"/storage/{region}/{name}"
    if capacity_gib < 1:
        raise InvalidArguments(f"{where}: capacity_gib must be positive")
    view.get(f"/storage/{region}", Region).add_storage_host(
        name=name,
        capacity_gib=capacity_gib,
        uri=uri,
        driver=_driver(driver, where),
        labels=parse_labels(labels, f"{where}: labels"),
    )


def configure_storage_host(view: View, *, storage_host: str, changes: str) -> None:
    """Change a storage host's capacity, connection, driver or labels."""
    view.get(storage_host, StorageHost).configure(**parse_changes(changes, STORAGE_SETTABLE, storage_host))


def remove_storage_host(view: View, *, storage_host: str) -> None:
    """Release a storage host (refused while it holds images or volumes)."""
    s = view.get(storage_host, StorageHost)
    view.get(s.parent_path, Region).remove_storage_host(name=s.name)


def add_image(view: View, *, storage_host: str, name: Annotated[str, Name()], size_gib: int = 10) -> None:
    """Register an image that storage host ``storage_host`` holds."""
    if size_gib < 1:
        raise InvalidArguments(f"{storage_host}/{name}: size_gib must be positive")
    view.get(storage_host, StorageHost).add_image(name=name, size_gib=size_gib)


def remove_image(view: View, *, image: str) -> None:
    """Forget an image (refused while volumes cloned from it remain)."""
    img = view.get(image, Image)
    view.get(img.parent_path, StorageHost).remove_image(name=img.name)


# --- network ---------------------------------------------------------------------------------------------
def add_network(view: View, *, name: Annotated[str, Name()], cidr: str = "", driver: str = "") -> None:
    """Add network ``name`` (``/network/<name>``)."""
    view.get("/network", NetworkRoot).add_network(
        name=name, cidr=cidr, driver=_driver(driver, f"/network/{name}")
    )


def remove_network(view: View, *, name: str) -> None:
    """Remove network ``name`` (refused while routers remain in it)."""
    view.get("/network", NetworkRoot).remove_network(name=name)


def add_router(
    view: View,
    *,
    network: str,
    name: Annotated[str, Name()],
    role: str = "primary",
    next_hop: str = "",
    driver: str = "",
) -> None:
    """Add router ``name`` to network ``network``; ``next_hop``: a router's path or its name in the same
    network (empty: none)."""
    net = view.get(f"/network/{network}", Network)
    net.add_router(name=name, role=role, driver=_driver(driver, f"{net.path}/{name}"))
    if next_hop:
        hop = next_hop if next_hop.startswith("/") else f"{net.path}/{next_hop}"
        net.child(name, Router).set_next_hop(next_hop=hop)


def remove_router(view: View, *, router: str) -> None:
    """Remove a router (refused while another router uses it as next hop)."""
    r = view.get(router, Router)
    view.get(r.parent_path, Network).remove_router(name=r.name)


INVENTORY_PROCEDURES: tuple[ProcedureFn, ...] = (
    add_region,
    configure_region,
    remove_region,
    add_host,
    configure_host,
    remove_host,
    add_storage_host,
    configure_storage_host,
    remove_storage_host,
    add_image,
    remove_image,
    add_network,
    remove_network,
    add_router,
    remove_router,
)
