"""``libvirt``: the standard schema's physical actions on real hypervisors, storage pools and networks.

Each model host (and storage host) maps to one libvirt connection: its ``uri`` attribute, or the driver's
URI. ``test:///default`` gives every host its own private instance of libvirt's built-in test hypervisor,
so tests and ``tropic demo --driver libvirt`` run on any machine without a daemon; ``qemu+ssh://...``
reaches real KVM hosts. How the schema maps onto libvirt objects (see docs/libvirt.md):

* VM -> a domain whose ``<metadata>`` records tropic's role (``vm``), image and volume; its configuration
  -> the domain's persistent definition. A configuration prepared ahead of a migration -> an inactive
  domain defined with role ``config``.
* images, volumes -> volumes of the storage host's ``tropic-images`` / ``tropic-volumes`` pools; a clone
  is a copy-on-write qcow2 volume backed by the image. export -> a marker volume in ``tropic-exports``;
  import -> a marker volume (named after the volume's path) in the compute host's ``tropic-imports`` pool.
* router -> a libvirt network whose metadata holds the router's path and next hop.
* migrate -> ``virDomainMigrate`` (live, persistent on the destination) where the connection supports it,
  otherwise define on the destination, start there, stop on the source.

Every action is idempotent, as the driver contract requires.

The parts: :mod:`~tropic.drivers.libvirt_hosts` (host -> connection mapping and shared plumbing),
:mod:`~tropic.drivers.libvirt_compute` and :mod:`~tropic.drivers.libvirt_storage` (the actions),
:mod:`~tropic.drivers.libvirt_inventory` (inventories, reload, provisioning test hypervisors),
:mod:`~tropic.drivers.libvirt_conn` (connections, errors) and :mod:`~tropic.drivers.libvirt_xml` (XML).
"""

from __future__ import annotations

from tropic.drivers.base import Driver
from tropic.drivers.libvirt_fleet import LibvirtFleet
from tropic.drivers.libvirt_hosts import (
    CONFIG_MEMORY_MIB,
    CONFIG_VCPUS,
    EXPORTS,
    IMAGE_BYTES,
    IMAGES,
    IMPORTS,
    MIGRATION_MODES,
    POOL_ROOT,
    VOLUMES,
    DomainHook,
)
from tropic.drivers.libvirt_stats import LibvirtStats

__all__ = [
    "CONFIG_MEMORY_MIB",
    "CONFIG_VCPUS",
    "EXPORTS",
    "IMAGES",
    "IMAGE_BYTES",
    "IMPORTS",
    "MIGRATION_MODES",
    "POOL_ROOT",
    "VOLUMES",
    "DomainHook",
    "LibvirtDriver",
    "refuse_domains",
]


def refuse_domains(*names: str) -> DomainHook:
    """A ``customize_domain`` hook that gives the named VMs a memory size in a unit libvirt does not know,
    so libvirt itself refuses to define them: a real device failure for demos and rollback tests."""
    wanted = frozenset(names)

    def hook(host: str, name: str, xml: str) -> str:
        if name not in wanted:
            return xml
        return xml.replace('<memory unit="KiB">', '<memory unit="parsecs">', 1)

    return hook


class LibvirtDriver(LibvirtStats, LibvirtFleet, Driver):
    """Hosts, storage hosts and routers on libvirt connections, one per host URI (arguments: see
    :class:`~tropic.drivers.libvirt_hosts.LibvirtHosts`)."""

    name = "libvirt"
