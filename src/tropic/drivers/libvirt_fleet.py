"""The libvirt driver's fleet actions: hosts and storage hosts brought under management (bound to their
connection, checked to answer and to be as large as declared) and released; images and routers provisioned
as pool volumes and networks.

On a hypervisor outside this process an image is an operator's file: ``add_image`` checks it is there and
``remove_image`` leaves it (tropic stops managing it); on in-process test hypervisors both provision.
"""

from __future__ import annotations

from tropic.drivers.base import Args, capacity_error
from tropic.drivers.libvirt_hosts import EXPORTS, IMAGES, VOLUMES
from tropic.drivers.libvirt_inventory import LibvirtInventory
from tropic.drivers.libvirt_xml import network_name, network_xml, parse_router, volume_xml
from tropic.errors import DriverError

GIB = 1024**3


class LibvirtFleet(LibvirtInventory):
    """:class:`~tropic.drivers.base.FleetDriver` on libvirt."""

    def add_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        size = (int(args["cpus"]), int(args["memory_mib"]))
        self.manage_host(path, str(args.get("uri", "") or ""), size=size)
        try:
            self._check_capacity(path, int(args["cpus"]), int(args["memory_mib"]))  # it answers, and fits
        except DriverError:
            self.unmanage(path)
            raise

    def _check_capacity(self, path: str, cpus: int, memory_mib: int) -> None:
        real = self.capacity(path)
        problem = "" if real is None else capacity_error(path, cpus, memory_mib, real)
        if problem:
            raise DriverError(f"libvirt: {problem}", path=path)

    def remove_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        with self._lock:
            ep = self._hosts.get(path)
        if ep is None:
            return
        vms = sorted(self._host_inventory(path, ep)["vms"])
        if vms:
            raise DriverError(f"libvirt: host {path} still runs VMs {vms}", path=path)
        self.unmanage(path)

    def add_storage_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        self.manage_storage_host(path, str(args.get("uri", "") or ""))
        try:
            ep = self._san_ep(path)
            with self._on(ep, path, "provision pools", path) as conn:  # it answers; pools ready
                for pool in (IMAGES, VOLUMES, EXPORTS):
                    self._pool(conn, pool, create=True)
        except DriverError:
            self.unmanage(path)
            raise

    def remove_storage_host(self, region: str, args: Args) -> None:
        path = f"{region}/{args['name']}"
        with self._lock:
            ep = self._sans.get(path)
        if ep is None:
            return
        volumes = self._san_inventory(path, ep)["volumes"]
        if volumes:
            raise DriverError(
                f"libvirt: storage host {path} still holds volumes {sorted(volumes)}", path=path
            )
        self.unmanage(path)

    def add_image(self, san: str, args: Args) -> None:
        name = str(args["name"])
        ep = self._san_ep(san)
        with self._on(ep, san, f"add image {name}", f"{san}/{name}") as conn:
            pool = self._pool(conn, IMAGES, create=True, refresh=True)
            if self._vol(pool, name) is not None:
                return
            if not ep.in_process:
                raise DriverError(
                    f"libvirt: no image {name} in pool {IMAGES} on {san} ({ep.uri}): put the image file "
                    "there first (tropic does not upload images)",
                    path=f"{san}/{name}",
                )
            pool.createXML(volume_xml(name, int(args.get("size_gib", 10) or 10) * GIB), 0)

    def remove_image(self, san: str, args: Args) -> None:
        name = str(args["name"])
        ep = self._san_ep(san)
        if not ep.in_process:
            return  # an operator's file: left where it is, no longer managed
        with self._on(ep, san, f"remove image {name}", f"{san}/{name}") as conn:
            vol = self._vol(self._pool(conn, IMAGES, create=False), name)
            if vol is not None:
                vol.delete(0)

    def add_router(self, network: str, args: Args) -> None:
        router = f"{network}/{args['name']}"
        ep = self._net_ep()
        with self._on(ep, "network", f"add router {router}", router) as conn:
            net = self._find(lambda: conn.networkLookupByName(network_name(router)))
            if net is None:
                conn.networkDefineXML(network_xml(router, str(args.get("next_hop", "") or "")))

    def remove_router(self, network: str, args: Args) -> None:
        router = f"{network}/{args['name']}"
        ep = self._net_ep()
        with self._on(ep, "network", f"remove router {router}", router) as conn:
            net = self._find(lambda: conn.networkLookupByName(network_name(router)))
            if net is None:
                return
            found = parse_router(str(net.XMLDesc(0)))
            if found is None or found[0] != router:
                return  # not tropic's network for this router
            if net.isActive():
                net.destroy()
            net.undefine()

    def configure(self, path: str, args: Args) -> None:
        """A host's or storage host's connection changed: rebind it; a host's declared capacity changed:
        check it against the device."""
        with self._lock:
            is_host, is_san = path in self._hosts, path in self._sans
        if "uri" in args:
            if is_host:
                self.manage_host(path, str(args["uri"] or ""))
            elif is_san:
                self.manage_storage_host(path, str(args["uri"] or ""))
        if is_host and ("cpus" in args or "memory_mib" in args):
            real = self.capacity(path)
            if real is not None:
                cpus = int(args.get("cpus", 0) or 0)
                memory = int(args.get("memory_mib", 0) or 0)
                problem = capacity_error(path, cpus, memory, real)
                if problem:
                    raise DriverError(f"libvirt: {problem}", path=path)
