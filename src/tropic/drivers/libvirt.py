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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tropic.drivers.base import Args, Driver
from tropic.drivers.libvirt_conn import (
    TEST_DEFAULT,
    Endpoint,
    is_bad_flags,
    is_missing,
    is_test_uri,
    is_unsupported,
    load_binding,
    native_uri,
    translate,
)
from tropic.drivers.libvirt_xml import (
    ROLE_CONFIG,
    ROLE_VM,
    DomainInfo,
    DomainSpec,
    domain_types,
    domain_xml,
    marker_name,
    marker_path,
    network_name,
    network_xml,
    parse_domain,
    parse_router,
    pool_xml,
    test_node_xml,
    vm_state,
    volume_backing,
    volume_format,
    volume_xml,
    with_next_hop,
    with_role,
    with_size,
)
from tropic.errors import ConfigError, DriverError
from tropic.model import RUNNING, STOPPED, Inventory, Model

# Pools tropic uses; created as directory pools under POOL_ROOT when missing.
IMAGES = "tropic-images"
VOLUMES = "tropic-volumes"
EXPORTS = "tropic-exports"
IMPORTS = "tropic-imports"
POOL_ROOT = "/var/lib/libvirt/tropic"

IMAGE_BYTES = 10 * 1024**3  # size of the images load() provisions (the model's Image.size_gib default)
CONFIG_VCPUS, CONFIG_MEMORY_MIB = 1, 128  # sizes of a bare configuration (never booted)
MIGRATION_MODES = ("auto", "live", "copy")

DomainHook = Callable[[str, str, str], str]


def refuse_domains(*names: str) -> DomainHook:
    """A ``customize_domain`` hook that gives the named VMs a memory size in a unit libvirt does not know,
    so libvirt itself refuses to define them: a real device failure for demos and rollback tests."""
    wanted = frozenset(names)

    def hook(host: str, name: str, xml: str) -> str:
        if name not in wanted:
            return xml
        return xml.replace('<memory unit="KiB">', '<memory unit="parsecs">', 1)

    return hook


class LibvirtDriver(Driver):
    """Hosts, storage hosts and routers on libvirt connections, one per host URI."""

    name = "libvirt"

    def __init__(
        self,
        uri: str = TEST_DEFAULT,
        *,
        hosts: Mapping[str, str] | None = None,
        storage: Mapping[str, str] | None = None,
        network_uri: str = "",
        migration: str = "auto",
        shutdown_timeout: float = 60.0,
        customize_domain: DomainHook | None = None,
    ) -> None:
        """``uri``: the connection of every host without a URI of its own (``test:///default``: a private
        test hypervisor each). ``hosts``/``storage``: host path -> URI. ``network_uri``: where routers'
        networks live (default: ``uri``). ``migration``: ``auto`` (live where supported, else copy),
        ``live`` (live only) or ``copy`` (define on the destination, stop on the source).
        ``shutdown_timeout``: seconds a guest gets to shut down before it is forced off.
        ``customize_domain(host, vm, xml) -> xml``: edit each VM's domain XML before it is defined."""
        if migration not in MIGRATION_MODES:
            raise ConfigError(f"libvirt: migration must be one of {MIGRATION_MODES}, not {migration!r}")
        self._lv = load_binding()
        self.uri = native_uri(uri)
        self.migration = migration
        self.shutdown_timeout = shutdown_timeout
        self.customize_domain = customize_domain
        self.migrations: dict[str, int] = {"live": 0, "copy": 0}
        self._network_uri = native_uri(network_uri) if network_uri else ""
        self._lock = threading.Lock()
        self._by_uri: dict[str, Endpoint] = {}
        self._hosts: dict[str, Endpoint] = {}
        self._sans: dict[str, Endpoint] = {}
        self._network: Endpoint | None = None
        self._tmp: str | None = None
        for path, host_uri in (hosts or {}).items():
            self.add_host(path, host_uri)
        for path, san_uri in (storage or {}).items():
            self.add_storage_host(path, san_uri)

    # --- host -> connection mapping ------------------------------------------------------------------
    def add_host(self, path: str, uri: str = "") -> None:
        """Manage compute host ``path`` through ``uri`` (empty: the driver's URI)."""
        self._assign(self._hosts, path, uri)

    def add_storage_host(self, path: str, uri: str = "") -> None:
        """Manage storage host ``path`` (its pools) through ``uri`` (empty: the driver's URI)."""
        self._assign(self._sans, path, uri)

    def _assign(self, role: dict[str, Endpoint], path: str, uri: str) -> None:
        with self._lock:
            old = role.get(path)
            new = role[path] = self._place(path, uri, role)
        if old is not None and old is not new and old.private:
            old.close()  # a private test hypervisor no one uses any more

    def bind(self, model: Model) -> LibvirtDriver:
        """Map every host and storage host of ``model`` to its ``uri`` attribute (or the driver's URI)."""
        for path, node in model.nodes.items():
            if node.kind == "host":
                self.add_host(path, str(node.attrs.get("uri", "")))
            elif node.kind == "storage_host":
                self.add_storage_host(path, str(node.attrs.get("uri", "")))
        return self

    def uris(self) -> dict[str, str]:
        """Host and storage host paths with the libvirt URI each is managed through."""
        with self._lock:
            return {p: e.uri for p, e in sorted({**self._hosts, **self._sans}.items())}

    def connection(self, path: str) -> Any:
        """The raw ``virConnect`` of a host or storage host (``"network"``: of the routers' networks), for
        operators and tests that want to look at libvirt directly."""
        if path == "network":
            ep = self._net_ep()
        else:
            found = self._hosts.get(path) or self._sans.get(path)
            ep = found if found is not None else self._unknown(path)
        with ep.lock:
            return ep.connect(self._lv, path)

    def _place(self, path: str, uri: str, role: dict[str, Endpoint]) -> Endpoint:
        """The endpoint for ``path`` (call with ``self._lock`` held)."""
        u = native_uri(uri) if uri else self.uri
        old = role.get(path)
        if u == TEST_DEFAULT:
            if old is not None and old.private:
                return old
            return self._private(path)
        if old is not None and old.uri == u:
            return old
        if role is self._hosts:
            for other, taken in self._hosts.items():
                if other != path and taken.uri == u:
                    raise ConfigError(
                        f"libvirt: hosts {other} and {path} both map to {u}; each compute host needs its own "
                        "libvirt connection (its domains would collide)",
                        path=path,
                    )
        shared = self._by_uri.get(u)
        if shared is None:
            shared = self._by_uri[u] = Endpoint(u)
        return shared

    def _private(self, label: str) -> Endpoint:
        """A fresh private test hypervisor, started from a node file of its own."""
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="tropic-libvirt-")
        fd, node = tempfile.mkstemp(
            prefix=label.strip("/").replace("/", "_") + "-", suffix=".xml", dir=self._tmp
        )
        with os.fdopen(fd, "w") as f:
            f.write(test_node_xml())
        return Endpoint(f"test://{node}", private=True)

    def _net_ep(self) -> Endpoint:
        with self._lock:
            if self._network is None:
                u = self._network_uri or self.uri
                if u == TEST_DEFAULT:
                    self._network = self._private("network")
                else:
                    self._network = self._by_uri.get(u) or self._by_uri.setdefault(u, Endpoint(u))
            return self._network

    def _unknown(self, path: str) -> Endpoint:
        raise DriverError(f"libvirt: no host or storage host {path} (not bound to a connection)", path=path)

    def _host_ep(self, host: str) -> Endpoint:
        ep = self._hosts.get(host)
        if ep is None:
            raise DriverError(f"libvirt: no host {host} (not bound to a libvirt connection)", path=host)
        return ep

    def _san_ep(self, san: str) -> Endpoint:
        ep = self._sans.get(san)
        if ep is None:
            raise DriverError(f"libvirt: no storage host {san} (not bound to a libvirt connection)", path=san)
        return ep

    # --- plumbing --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _on(self, ep: Endpoint, host: str, what: str, resource: str) -> Iterator[Any]:
        """The host's connection, under its lock; libvirt errors become tropic errors naming both."""
        with ep.lock:
            conn = ep.connect(self._lv, host)
            try:
                yield conn
            except self._lv.libvirtError as e:
                raise translate(self._lv, e, what=what, resource=resource, host=host, uri=ep.uri) from e

    @contextlib.contextmanager
    def _on_two(
        self, a: tuple[str, Endpoint], b: tuple[str, Endpoint], what: str, resource: str
    ) -> Iterator[tuple[Any, Any]]:
        """Both hosts' connections, locked in a fixed order (no deadlock between opposite migrations)."""
        (ha, ea), (hb, eb) = a, b
        first, second = sorted((ea, eb), key=lambda e: e.uri)
        with first.lock, second.lock:
            ca = ea.connect(self._lv, ha)
            cb = eb.connect(self._lv, hb)
            try:
                yield ca, cb
            except self._lv.libvirtError as e:
                raise translate(
                    self._lv,
                    e,
                    what=what,
                    resource=resource,
                    host=f"{ha} -> {hb}",
                    uri=f"{ea.uri} -> {eb.uri}",
                ) from e

    def _find(self, fn: Callable[[], Any]) -> Any:
        """``fn()``'s object, or None when libvirt says it does not exist."""
        try:
            return fn()
        except self._lv.libvirtError as e:
            if is_missing(self._lv, e):
                return None
            raise

    def _domain(self, conn: Any, name: str) -> Any:
        return self._find(lambda: conn.lookupByName(name))

    def _config_xml(self, dom: Any) -> str:
        """The definition of a persistent domain; the live description of a transient one."""
        if dom.isPersistent():
            return str(dom.XMLDesc(self._lv.VIR_DOMAIN_XML_INACTIVE))
        return str(dom.XMLDesc(0))

    def _info(self, dom: Any) -> DomainInfo:
        return parse_domain(self._config_xml(dom))

    def _domain_type(self, conn: Any, ep: Endpoint) -> str:
        if not ep.domain_type:
            offered = domain_types(conn.getCapabilities())
            ep.domain_type = next((t for t in ("kvm", "qemu") if t in offered), offered[0] if offered else "")
            if not ep.domain_type:
                raise DriverError(f"libvirt: {ep.uri} offers no domain type to define VMs with")
        return ep.domain_type

    def _pool(self, conn: Any, name: str, *, create: bool, refresh: bool = False) -> Any:
        """Pool ``name``, started; created as a directory pool when missing and ``create``; else None."""
        pool = self._find(lambda: conn.storagePoolLookupByName(name))
        if pool is None:
            if not create:
                return None
            pool = conn.storagePoolDefineXML(pool_xml(name, f"{POOL_ROOT}/{name}"), 0)
            with contextlib.suppress(self._lv.libvirtError):
                pool.build(0)  # makes the directory; it may exist already
            with contextlib.suppress(self._lv.libvirtError):
                pool.setAutostart(1)
        if not pool.isActive():
            pool.create(0)
        elif refresh and not is_test_uri(str(conn.getURI())):
            with contextlib.suppress(self._lv.libvirtError):
                pool.refresh(0)  # notice files added or removed outside libvirt
        return pool

    def _vol(self, pool: Any, name: str) -> Any:
        return None if pool is None else self._find(lambda: pool.storageVolLookupByName(name))

    def _ensure_marker(self, pool: Any, name: str) -> None:
        if self._vol(pool, name) is None:
            pool.createXML(volume_xml(name, 0), 0)

    def _drop_marker(self, pool: Any, name: str) -> None:
        vol = self._vol(pool, name)
        if vol is not None:
            vol.delete(0)

    def _undefine(self, dom: Any) -> None:
        lv = self._lv
        base = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        full = (
            base | lv.VIR_DOMAIN_UNDEFINE_NVRAM | getattr(lv, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0)
        )
        for flags in (full, base):
            try:
                dom.undefineFlags(flags)
                return
            except lv.libvirtError as e:
                if not is_bad_flags(lv, e):
                    raise
        dom.undefine()

    def _shut_down(self, ep: Endpoint, dom: Any, *, release: bool = True) -> None:
        """Ask the guest to shut down; force it off after ``shutdown_timeout``. With ``release`` (the
        caller holds this host's lock once and no other) the lock is let go while the guest takes its
        time, so other work on the host goes on."""
        with contextlib.suppress(self._lv.libvirtError):
            dom.shutdown()  # fails if the domain stopped meanwhile; checked below
        deadline = time.monotonic() + self.shutdown_timeout
        while dom.isActive() and time.monotonic() < deadline:
            if release:
                ep.lock.release()
            try:
                time.sleep(0.2)
            finally:
                if release:
                    ep.lock.acquire()
        if dom.isActive():
            dom.destroy()

    def _set_state(self, ep: Endpoint, dom: Any, state: str) -> None:
        if state == RUNNING and not dom.isActive():
            dom.create()
        elif state == STOPPED and dom.isActive():
            self._shut_down(ep, dom)

    def _vm(self, conn: Any, vm: str) -> Any:
        """The domain of VM ``vm`` (a domain tropic did not define counts as a VM too)."""
        name = vm.rsplit("/", 1)[1]
        dom = self._domain(conn, name)
        if dom is None or (self._info(dom).role == ROLE_CONFIG and not dom.isActive()):
            raise DriverError(f"libvirt: no VM {vm}", path=vm)
        return dom

    # --- compute -----------------------------------------------------------------------------------------
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

    # --- storage -------------------------------------------------------------------------------------------
    def clone_image(self, san: str, args: Args) -> None:
        image, volume = str(args["image"]), str(args["volume"])
        ep = self._san_ep(san)
        with self._on(ep, san, f"clone {image} into {volume}", f"{san}/{volume}") as conn:
            img = self._vol(self._pool(conn, IMAGES, create=False, refresh=True), image)
            if img is None:
                raise DriverError(f"libvirt: no image {image} on {san}", path=f"{san}/{image}")
            pool = self._pool(conn, VOLUMES, create=True)
            if self._vol(pool, volume) is not None:
                return
            self._drop_marker(self._pool(conn, EXPORTS, create=False), volume)  # a new volume is unexported
            xml = volume_xml(
                volume,
                int(img.info()[1]),
                backing=str(img.path()),
                backing_format=volume_format(img.XMLDesc(0)),
            )
            pool.createXML(xml, 0)

    def delete_volume(self, san: str, args: Args) -> None:
        volume = str(args["volume"])
        ep = self._san_ep(san)
        with self._on(ep, san, f"delete volume {volume}", f"{san}/{volume}") as conn:
            vol = self._vol(self._pool(conn, VOLUMES, create=False), volume)
            if vol is not None:
                vol.delete(0)
            self._drop_marker(self._pool(conn, EXPORTS, create=False), volume)

    def export_volume(self, volume: str, args: Args) -> None:
        san, name = volume.rsplit("/", 1)
        ep = self._san_ep(san)
        with self._on(ep, san, f"export {name}", volume) as conn:
            if self._vol(self._pool(conn, VOLUMES, create=False), name) is None:
                raise DriverError(f"libvirt: no volume {volume}", path=volume)
            self._ensure_marker(self._pool(conn, EXPORTS, create=True), name)

    def unexport_volume(self, volume: str, args: Args) -> None:
        san, name = volume.rsplit("/", 1)
        ep = self._san_ep(san)
        with self._on(ep, san, f"unexport {name}", volume) as conn:
            self._drop_marker(self._pool(conn, EXPORTS, create=False), name)

    # --- network -------------------------------------------------------------------------------------------
    def _network_xml(self, net: Any) -> str:
        try:
            return str(net.XMLDesc(self._lv.VIR_NETWORK_XML_INACTIVE))
        except self._lv.libvirtError as e:
            if not is_bad_flags(self._lv, e):  # the test driver knows no INACTIVE flag for networks
                raise
            return str(net.XMLDesc(0))

    def set_next_hop(self, router: str, args: Args) -> None:
        ep = self._net_ep()
        with self._on(ep, "network", "set next hop", router) as conn:
            net = self._find(lambda: conn.networkLookupByName(network_name(router)))
            found = None if net is None else parse_router(self._network_xml(net))
            if net is None or found is None or found[0] != router:
                raise DriverError(f"libvirt: no router {router}", path=router)
            conn.networkDefineXML(with_next_hop(self._network_xml(net), str(args["next_hop"])))

    # --- inventory and reload ---------------------------------------------------------------------------
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

    def close(self) -> None:
        with self._lock:
            eps = {id(e): e for e in [*self._hosts.values(), *self._sans.values(), *self._by_uri.values()]}
            if self._network is not None:
                eps[id(self._network)] = self._network
            tmp, self._tmp = self._tmp, None
        for ep in eps.values():
            ep.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
