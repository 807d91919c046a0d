"""The libvirt driver's compute actions: VMs as domains, configurations as persistent definitions,
migration (live where the connection supports it, else a copy that survives a crash at any stage),
volume imports as marker volumes, and a VM's power state and size."""

from __future__ import annotations

from typing import Any

from tropic.drivers.base import Args
from tropic.drivers.libvirt_conn import Endpoint, is_unsupported
from tropic.drivers.libvirt_hosts import (
    CONFIG_MEMORY_MIB,
    CONFIG_VCPUS,
    EXPORTS,
    IMPORTS,
    VOLUMES,
    LibvirtHosts,
)
from tropic.drivers.libvirt_xml import (
    ROLE_CONFIG,
    ROLE_VM,
    DomainInfo,
    DomainSpec,
    domain_xml,
    marker_name,
    marker_path,
    with_role,
    with_size,
)
from tropic.errors import DriverError
from tropic.model import RUNNING


class LibvirtCompute(LibvirtHosts):
    """Hypervisor hosts and their VMs (:class:`~tropic.drivers.base.ComputeDriver`) on libvirt."""

    def create_vm(self, host: str, args: Args) -> None:
        name = str(args["name"])
        volume = str(args.get("volume", ""))
        vm = f"{host}/{name}"
        ep = self._host_ep(host)
        disk = ""
        if volume:
            if volume not in self._imports(host, ep):
                raise DriverError(f"libvirt: volume {volume} is not attached to {host}", path=host)
            disk = self._volume_path(volume)
        with self._on(ep, host, f"create VM {name}", vm) as conn:
            dom = self._domain(conn, name)
            uuid = ""
            if dom is not None:
                info = self._info(dom)
                if not info.role:
                    raise DriverError(
                        f"libvirt: domain {name} on {host} ({ep.uri}) exists and is not managed by tropic",
                        path=vm,
                    )
                uuid = info.uuid
            spec = DomainSpec(
                name=name,
                vcpus=int(args["vcpus"]),
                memory_mib=int(args["memory_mib"]),
                role=ROLE_VM,
                image=str(args.get("image", "")),
                volume=volume,
                disk_path=disk,
                uuid=uuid,
            )
            xml = domain_xml(spec, self._domain_type(conn, ep))
            if self.customize_domain is not None:
                xml = self.customize_domain(host, name, xml)
            dom = conn.defineXML(xml)
            self._set_state(ep, dom, str(args.get("state", RUNNING)))

    def delete_vm(self, host: str, args: Args) -> None:
        name = str(args["name"])
        ep = self._host_ep(host)
        with self._on(ep, host, f"delete VM {name}", f"{host}/{name}") as conn:
            dom = self._domain(conn, name)
            if dom is None:
                return
            persistent = bool(dom.isPersistent())
            if dom.isActive():
                dom.destroy()  # a transient domain is gone after this
            if persistent:
                self._undefine(dom)

    def create_config(self, host: str, args: Args) -> None:
        name = str(args["name"])
        ep = self._host_ep(host)
        with self._on(ep, host, f"create configuration {name}", f"{host}/{name}") as conn:
            dom = self._domain(conn, name)
            if dom is None:
                spec = DomainSpec(
                    name=name, vcpus=CONFIG_VCPUS, memory_mib=CONFIG_MEMORY_MIB, role=ROLE_CONFIG
                )
                conn.defineXML(domain_xml(spec, self._domain_type(conn, ep)))
            elif not dom.isPersistent():
                conn.defineXML(
                    with_role(self._config_xml(dom), ROLE_VM)
                )  # give the running VM its config back

    def delete_config(self, host: str, args: Args) -> None:
        name = str(args["name"])
        vm = f"{host}/{name}"
        ep = self._host_ep(host)
        with self._on(ep, host, f"delete configuration {name}", vm) as conn:
            dom = self._domain(conn, name)
            if dom is None or not dom.isPersistent():
                return
            if self._info(dom).role != ROLE_CONFIG and not dom.isActive():
                raise DriverError(
                    f"libvirt: cannot delete the configuration of stopped VM {name} on {host}: "
                    "libvirt keeps no stopped domain without its definition",
                    path=vm,
                )
            self._undefine(dom)  # a running VM stays, as a transient domain

    def migrate(self, host: str, args: Args) -> None:
        """Live migration where libvirt supports it; otherwise a copy: define the VM on the destination
        (recording whether it has to boot there), shut it down on the source, keep the source's definition
        as a bare configuration, then boot it on the destination. Never two copies running on one disk;
        each stage leaves a state from which a redo after a crash completes the migration."""
        name = str(args["name"])
        dest = str(args["dest"])
        vm = f"{host}/{name}"
        src_ep, dst_ep = self._host_ep(host), self._host_ep(dest)
        if src_ep is dst_ep:
            raise DriverError(f"libvirt: {host} and {dest} are the same hypervisor ({src_ep.uri})", path=vm)
        with self._on_two((host, src_ep), (dest, dst_ep), f"migrate {name}", vm) as (sconn, dconn):
            sdom = self._domain(sconn, name)
            sinfo = None if sdom is None else self._info(sdom)
            ddom = self._domain(dconn, name)
            dinfo = None if ddom is None else self._info(ddom)
            if sdom is None or sinfo is None or (sinfo.role == ROLE_CONFIG and not sdom.isActive()):
                if ddom is not None and dinfo is not None and dinfo.role != ROLE_CONFIG:
                    self._finish_migration(ddom, dinfo, sconn, dconn)  # already migrated (maybe half way)
                    return
                raise DriverError(f"libvirt: no VM {name} on {host} to migrate", path=vm)
            if ddom is None or dinfo is None:
                raise DriverError(f"libvirt: {dest} has no configuration for {name}", path=dest)
            running = bool(sdom.isActive())
            live = running and self.migration != "copy" and dinfo.role == ROLE_CONFIG
            if live and self._live_migrate(sdom, sinfo, ddom, dinfo, dconn):
                running = False  # it runs on the destination now; nothing to boot there
                ddom = None
            if ddom is not None:
                boot = running or (dinfo.role == ROLE_VM and dinfo.boot)
                xml = with_role(self._config_xml(sdom), ROLE_VM, uuid_=dinfo.uuid, boot=boot)
                ddom = dconn.defineXML(xml)  # one define in place of the configuration: no gap
                with self._lock:
                    self.migrations["copy"] += 1
            sdom = self._domain(sconn, name)
            if sdom is not None:
                persistent = bool(sdom.isPersistent())
                if sdom.isActive():
                    self._shut_down(src_ep, sdom, release=False)  # another lock is held: never let go
                if persistent:
                    sconn.defineXML(with_role(self._config_xml(sdom), ROLE_CONFIG))  # the source's config
            ddom = self._domain(dconn, name)
            if ddom is not None:
                self._finish_migration(ddom, self._info(ddom), sconn, dconn)

    def _finish_migration(self, ddom: Any, dinfo: DomainInfo, sconn: Any, dconn: Any) -> None:
        """Boot the VM on the destination if the copy recorded it ran, and move its volume import."""
        if dinfo.boot:
            if not ddom.isActive():
                ddom.create()
            dconn.defineXML(with_role(self._config_xml(ddom), ROLE_VM))  # the intent is done
        self._move_import(sconn, dconn, dinfo.volume)

    def _live_migrate(self, sdom: Any, sinfo: DomainInfo, ddom: Any, dinfo: DomainInfo, dconn: Any) -> bool:
        """Real live migration; False when the connection does not support it (and mode is ``auto``)."""
        lv = self._lv
        saved = ""
        if dinfo.uuid != sinfo.uuid:
            # A configuration under another identity would make libvirt refuse the incoming domain.
            saved = self._config_xml(ddom)
            self._undefine(ddom)
        try:
            sdom.migrate(dconn, lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PERSIST_DEST, None, None, 0)
        except lv.libvirtError as e:
            if saved:
                dconn.defineXML(saved)
            if self.migration == "auto" and is_unsupported(lv, e):
                return False
            raise
        with self._lock:
            self.migrations["live"] += 1
        return True

    def _move_import(self, sconn: Any, dconn: Any, volume: str) -> None:
        if not volume:
            return
        self._drop_marker(self._pool(sconn, IMPORTS, create=False), marker_name(volume))
        self._ensure_marker(self._pool(dconn, IMPORTS, create=True), marker_name(volume))

    def import_volume(self, host: str, args: Args) -> None:
        volume = str(args["volume"])
        san, name = volume.rsplit("/", 1)
        san_ep = self._san_ep(san)
        with self._on(san_ep, san, f"check export of {name}", volume) as conn:
            if self._vol(self._pool(conn, VOLUMES, create=False), name) is None:
                raise DriverError(f"libvirt: no volume {volume}", path=volume)
            if self._vol(self._pool(conn, EXPORTS, create=False), name) is None:
                raise DriverError(f"libvirt: volume {volume} is not exported", path=volume)
        ep = self._host_ep(host)
        with self._on(ep, host, f"import {volume}", host) as conn:
            self._ensure_marker(self._pool(conn, IMPORTS, create=True), marker_name(volume))

    def unimport_volume(self, host: str, args: Args) -> None:
        volume = str(args["volume"])
        ep = self._host_ep(host)
        with self._on(ep, host, f"unimport {volume}", host) as conn:
            self._drop_marker(self._pool(conn, IMPORTS, create=False), marker_name(volume))

    def _imports(self, host: str, ep: Endpoint) -> list[str]:
        with self._on(ep, host, "list imported volumes", host) as conn:
            pool = self._pool(conn, IMPORTS, create=False, refresh=True)
            return [] if pool is None else sorted(marker_path(v.name()) for v in pool.listAllVolumes(0))

    def _volume_path(self, volume: str) -> str:
        """Where the volume lives on its storage host (shared storage: the same path on compute hosts)."""
        san, name = volume.rsplit("/", 1)
        ep = self._san_ep(san)
        with self._on(ep, san, f"look up volume {name}", volume) as conn:
            vol = self._vol(self._pool(conn, VOLUMES, create=False), name)
            if vol is None:
                raise DriverError(f"libvirt: no volume {volume}", path=volume)
            return str(vol.path())

    def start(self, vm: str, args: Args) -> None:
        host = vm.rsplit("/", 1)[0]
        ep = self._host_ep(host)
        with self._on(ep, host, "start", vm) as conn:
            dom = self._vm(conn, vm)
            if not dom.isActive():
                dom.create()

    def stop(self, vm: str, args: Args) -> None:
        host = vm.rsplit("/", 1)[0]
        ep = self._host_ep(host)
        with self._on(ep, host, "stop", vm) as conn:
            dom = self._vm(conn, vm)
            if not dom.isActive():
                return
            if not dom.isPersistent():
                raise DriverError(
                    f"libvirt: {vm} has no configuration on {host}; stopping it would make it vanish", path=vm
                )
            self._shut_down(ep, dom)

    def resize(self, vm: str, args: Args) -> None:
        """Change the VM's definition; a running VM gets the new size at its next boot."""
        host = vm.rsplit("/", 1)[0]
        vcpus, memory_mib = int(args["vcpus"]), int(args["memory_mib"])
        ep = self._host_ep(host)
        with self._on(ep, host, "resize", vm) as conn:
            dom = self._vm(conn, vm)
            if dom.isPersistent():
                conn.defineXML(with_size(self._config_xml(dom), vcpus, memory_mib))
            else:
                live = self._lv.VIR_DOMAIN_AFFECT_LIVE
                dom.setVcpusFlags(vcpus, live)
                dom.setMemoryFlags(memory_mib * 1024, live)
