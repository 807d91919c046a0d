"""What the libvirt driver's devices hold, read back as an inventory (all of it, or below one path for
the reconciler), and provisioning in-process test hypervisors from an inventory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tropic.drivers.libvirt_compute import LibvirtCompute
from tropic.drivers.libvirt_conn import Endpoint, is_missing
from tropic.drivers.libvirt_hosts import EXPORTS, IMAGE_BYTES, IMAGES, IMPORTS, VOLUMES
from tropic.drivers.libvirt_storage import LibvirtStorage
from tropic.drivers.libvirt_xml import (
    ROLE_CONFIG,
    marker_name,
    network_xml,
    parse_router,
    vm_state,
    volume_backing,
    volume_xml,
)
from tropic.errors import ConfigError, DriverError
from tropic.model import RUNNING, Inventory


class LibvirtInventory(LibvirtCompute, LibvirtStorage):
    """Inventories and provisioning on top of the libvirt actions."""

    def _host_inventory(self, host: str, ep: Endpoint) -> dict[str, Any]:
        vms: dict[str, Any] = {}
        configs: list[str] = []
        with self._on(ep, host, "read domains", host) as conn:
            for dom in conn.listAllDomains(0):
                try:
                    info = self._info(dom)
                    persistent = bool(dom.isPersistent())
                    native = int(dom.state()[0])
                    active = bool(dom.isActive())
                except self._lv.libvirtError as e:
                    if is_missing(self._lv, e):
                        continue  # went away while we looked (a change outside tropic)
                    raise
                if persistent:
                    configs.append(info.name)
                if info.role != ROLE_CONFIG or active:
                    vms[info.name] = {
                        "vcpus": info.vcpus,
                        "memory_mib": info.memory_mib,
                        "image": info.image,
                        "volume": info.volume,
                        "state": vm_state(native).value,
                    }
        return {"vms": vms, "configs": sorted(configs), "volumes": self._imports(host, ep)}

    def _san_inventory(self, san: str, ep: Endpoint) -> dict[str, Any]:
        with self._on(ep, san, "read pools", san) as conn:
            images = self._pool(conn, IMAGES, create=False, refresh=True)
            by_path = (
                {} if images is None else {str(v.path()): str(v.name()) for v in images.listAllVolumes(0)}
            )
            exports = self._pool(conn, EXPORTS, create=False, refresh=True)
            exported = set() if exports is None else {str(v.name()) for v in exports.listAllVolumes(0)}
            volumes: dict[str, Any] = {}
            pool = self._pool(conn, VOLUMES, create=False, refresh=True)
            for vol in [] if pool is None else pool.listAllVolumes(0):
                name = str(vol.name())
                image = by_path.get(volume_backing(vol.XMLDesc(0)), "")
                volumes[name] = {"image": f"{san}/{image}" if image else "", "exported": name in exported}
        return {"images": sorted(by_path.values()), "volumes": volumes}

    def _routers_inventory(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ep = self._net_ep()
        with self._on(ep, "network", "read networks", "/network") as conn:
            for net in conn.listAllNetworks(0):
                found = parse_router(self._network_xml(net))
                if found is not None:
                    out[found[0]] = {"next_hop": found[1]}
        return dict(sorted(out.items()))

    def inventory(self) -> Inventory:
        with self._lock:
            hosts, sans = dict(self._hosts), dict(self._sans)
        return {
            "hosts": {p: self._host_inventory(p, ep) for p, ep in sorted(hosts.items())},
            "storage": {p: self._san_inventory(p, ep) for p, ep in sorted(sans.items())},
            "routers": self._routers_inventory(),
        }

    def reload(self, path: str) -> Inventory:
        """What the devices at or below ``path`` really hold, in inventory shape (e.g. one host's domains,
        including ones tropic never created), for reconciling the model with them."""

        def under(p: str) -> bool:
            return path == "/" or p == path or p.startswith(path.rstrip("/") + "/")

        with self._lock:
            hosts = {p: ep for p, ep in self._hosts.items() if under(p)}
            sans = {p: ep for p, ep in self._sans.items() if under(p)}
        routers: dict[str, Any] = {}
        if path == "/" or path == "/network" or path.startswith("/network/"):
            routers = {p: r for p, r in self._routers_inventory().items() if under(p)}
        if not hosts and not sans and not routers:
            raise DriverError(f"libvirt: nothing at {path}: no host, storage host or router there", path=path)
        return {
            "hosts": {p: self._host_inventory(p, ep) for p, ep in sorted(hosts.items())},
            "storage": {p: self._san_inventory(p, ep) for p, ep in sorted(sans.items())},
            "routers": routers,
        }

    # --- provisioning (test hypervisors) ------------------------------------------------------------------
    def load(self, inventory: Inventory) -> None:
        """Make the devices hold exactly ``inventory`` (e.g. a freshly built datacenter). Only for test
        hypervisors in this process: on real hosts it would destroy what they run."""
        with self._lock:
            for path in inventory["hosts"]:
                if path not in self._hosts:
                    self._hosts[path] = self._place(path, "", self._hosts)
            for path in inventory["storage"]:
                if path not in self._sans:
                    self._sans[path] = self._place(path, "", self._sans)
            dropped: list[Endpoint] = []
            for role, wanted in ((self._hosts, inventory["hosts"]), (self._sans, inventory["storage"])):
                for path in [p for p in role if p not in wanted]:
                    dropped.append(
                        role.pop(path)
                    )  # forget hosts the inventory does not have, as the sim does
            eps = {id(e): e for e in [*self._hosts.values(), *self._sans.values()]}
        for ep in dropped:
            if ep.private:
                ep.close()
        net = self._net_ep()
        eps[id(net)] = net
        real = sorted({e.uri for e in eps.values() if not e.in_process})
        if real:
            raise ConfigError(
                "libvirt: load() provisions in-process test hypervisors only; "
                f"refusing to wipe {', '.join(real)}"
            )
        for ep in eps.values():
            ep.close()  # reopening an in-process test hypervisor starts it afresh from its node file
            self._wipe(ep)
        for san, s in inventory["storage"].items():
            self._load_san(san, s)
        for host, h in inventory["hosts"].items():
            self._load_host(host, h)
        with self._on(net, "network", "define routers", "/network") as conn:
            for router, r in inventory["routers"].items():
                conn.networkDefineXML(network_xml(router, str(r.get("next_hop", ""))))

    def _wipe(self, ep: Endpoint) -> None:
        with self._on(ep, ep.uri, "wipe", ep.uri) as conn:
            for dom in conn.listAllDomains(0):
                persistent = bool(dom.isPersistent())
                if dom.isActive():
                    dom.destroy()
                if persistent:
                    self._undefine(dom)
            for pool in conn.listAllStoragePools(0):
                if pool.name() in (IMAGES, VOLUMES, EXPORTS, IMPORTS) and pool.isActive():
                    for vol in pool.listAllVolumes(0):
                        vol.delete(0)
            for net in conn.listAllNetworks(0):
                if parse_router(self._network_xml(net)) is not None:
                    if net.isActive():
                        net.destroy()
                    net.undefine()

    def _load_san(self, san: str, s: Mapping[str, Any]) -> None:
        ep = self._san_ep(san)
        with self._on(ep, san, "provision images", san) as conn:
            self._pool(conn, VOLUMES, create=True)
            self._pool(conn, EXPORTS, create=True)
            pool = self._pool(conn, IMAGES, create=True)
            for image in s["images"]:
                if self._vol(pool, image) is None:
                    pool.createXML(volume_xml(image, IMAGE_BYTES), 0)
        for name, vol in s["volumes"].items():
            image = str(vol.get("image", ""))
            if image.rsplit("/", 1)[0] != san:
                raise ConfigError(
                    f"libvirt: volume {san}/{name} must be cloned from an image of {san}", path=san
                )
            self.clone_image(san, {"image": image.rsplit("/", 1)[1], "volume": name})
            if vol.get("exported"):
                self.export_volume(f"{san}/{name}", {})

    def _load_host(self, host: str, h: Mapping[str, Any]) -> None:
        ep = self._host_ep(host)
        with self._on(ep, host, "provision imports", host) as conn:
            pool = self._pool(conn, IMPORTS, create=True)
            for volume in h["volumes"]:
                self._ensure_marker(pool, marker_name(str(volume)))
        configs = set(h["configs"])
        for name, spec in h["vms"].items():
            self.create_vm(host, {**spec, "name": name})
            if name not in configs:
                if spec.get("state", RUNNING) != RUNNING:
                    raise ConfigError(f"libvirt: stopped VM {host}/{name} needs a configuration", path=host)
                self.delete_config(host, {"name": name})
        for name in configs - set(h["vms"]):
            self.create_config(host, {"name": name})
