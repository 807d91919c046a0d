"""The logical model an inventory describes: what ``tropic serve --inventory`` initialises a fresh store with.

Regions become ``/compute/<r>`` and ``/storage/<r>``; hosts, storage hosts with their images, networks
with their routers; each VM with its volume ``vol-<name>`` (cloned from its image, exported, imported on
its host) when it names an image, as ``spawn_vm`` lays them out. A host's capacity left out of the file
comes from its device (:func:`device_capacity`); when neither tells, the error names the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tropic.errors import TropicError
from tropic.inventory.check import check_capacity, host_key, resolved
from tropic.inventory.load import Inventory
from tropic.model import (
    STANDARD,
    VM,
    ComputeRoot,
    Host,
    Image,
    Model,
    Network,
    NetworkRoot,
    Region,
    Router,
    StorageHost,
    StorageRoot,
    Volume,
)
from tropic.procedures.standard import volume_name

Capacity = Mapping[tuple[str, str], tuple[int, int]]


def host_path(region: str, host: str) -> str:
    return f"/compute/{region}/{host}"


def storage_path(region: str, san: str) -> str:
    return f"/storage/{region}/{san}"


def needs_capacity(inv: Inventory) -> list[tuple[str, str]]:
    """``(region, host)`` of the hosts whose CPUs or memory the file leaves to the device."""
    return [(h.region, h.name) for h in inv.fleet.hosts if h.cpus is None or h.memory_mib is None]


def device_capacity(
    inv: Inventory, ask: Callable[[str], tuple[int, int] | None]
) -> dict[tuple[str, str], tuple[int, int]]:
    """Ask the devices (``driver.capacity(host path)``) for the capacity the file leaves out."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for region, host in needs_capacity(inv):
        try:
            answer = ask(host_path(region, host))
        except TropicError:
            answer = None  # the device could not tell: reported below, naming the host
        if answer is not None:
            out[(region, host)] = (int(answer[0]), int(answer[1]))
    return out


def build_model(inv: Inventory, capacity: Capacity | None = None, *, provisional: bool = False) -> Model:
    """The model of ``inv`` (a checked inventory); ``capacity``: what devices reported for hosts whose
    capacity the file leaves out. :class:`~tropic.inventory.errors.InventoryError` names every host whose
    capacity nobody tells, or that its VMs would not fit. ``provisional``: capacity nobody tells is 0 CPUs
    and 0 MiB, unchecked (a model to show a driver which hosts it drives before it is asked their
    capacity; 0 means "not declared" to a driver that sizes devices it creates)."""
    fleet = inv.fleet
    caps = dict(capacity or {})
    if provisional:
        caps = {(h.region, h.name): caps.get((h.region, h.name), (0, 0)) for h in fleet.hosts}
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, h in enumerate(fleet.hosts):
        cpus, mem = resolved(h, caps.get((h.region, h.name)))
        for key, value in (("cpus", cpus), ("memory_mib", mem)):
            if value is None:
                found.append(
                    (
                        ("hosts", i, key),
                        f"host {h.region}/{h.name}: {key} is not in the file and its device cannot tell "
                        f"(driver {h.driver or 'of the server'}); give {key}",
                    )
                )
    if not provisional:
        found += check_capacity(fleet, caps)
    if found:
        raise inv.error(found)

    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    m.add("/network", NetworkRoot)
    for r in fleet.regions:
        attrs = {"location": r.location, "timezone": r.timezone, "provider": r.provider}
        for root in ("/compute", "/storage"):
            m.add(f"{root}/{r.name}", Region, **attrs, labels=dict(r.labels))
    for h in fleet.hosts:
        cpus, mem = resolved(h, caps.get((h.region, h.name)))
        m.add(
            host_path(h.region, h.name),
            Host,
            cpus=cpus,
            memory_mib=mem,
            cpu_overcommit=float(h.cpu_overcommit),
            uri=h.uri,
            driver=h.driver,
            failure_domain=h.failure_domain,
            labels=dict(h.labels),
            cordoned=h.cordoned,
        )
    for s in fleet.storage:
        san = storage_path(s.region, s.name)
        m.add(
            san, StorageHost, capacity_gib=s.capacity_gib, uri=s.uri, driver=s.driver, labels=dict(s.labels)
        )
        for img in s.images:
            m.add(f"{san}/{img.name}", Image, size_gib=img.size_gib)
    for n in fleet.networks:
        m.add(f"/network/{n.name}", Network, cidr=n.cidr, driver=n.driver)
        for rt in n.routers:
            hop = f"/network/{n.name}/{rt.next_hop}" if rt.next_hop else ""
            driver = rt.driver or n.driver
            m.add(f"/network/{n.name}/{rt.name}", Router, role=rt.role, next_hop=hop, driver=driver)
    for vm in fleet.vms:
        placed = host_key(fleet, vm.host)
        assert placed is not None  # checked when loaded
        hpath = host_path(*placed)
        vm_region = placed[0]
        image = volume = ""
        if vm.image:
            san_name, _, image_name = vm.image.partition("/")
            san = storage_path(vm_region, san_name)
            image = f"{san}/{image_name}"
            volume = f"{san}/{volume_name(vm.name)}"
            size = m.nodes[image].attrs["size_gib"]
            m.add(volume, Volume, image=image, size_gib=size, exported=True)
            node = m.nodes[hpath]
            node.attrs["volumes"] = [*node.attrs["volumes"], volume]
        m.add(
            f"{hpath}/{vm.name}",
            VM,
            vcpus=vm.vcpus,
            memory_mib=vm.memory_mib,
            image=image,
            volume=volume,
            state=vm.state,
            labels=dict(vm.labels),
        )
        node = m.nodes[hpath]
        node.attrs["configs"] = [*node.attrs["configs"], vm.name]
        if node.attrs["cordoned"] and "cordon_vms" in Host.attrs:
            # A cordoned host keeps the VMs it held when cordoned: those the file puts there.
            node.attrs["cordon_vms"] = sorted([*node.attrs["cordon_vms"], vm.name])
    return m
