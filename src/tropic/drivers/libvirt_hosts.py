"""Host -> libvirt connection mapping and the plumbing every libvirt action shares: connections under
their locks with libvirt errors translated, lookups that treat "no such object" as None, tropic's storage
pools, marker volumes, undefining and shutting down domains.

:class:`LibvirtHosts` is the base of the libvirt driver (see :mod:`tropic.drivers.libvirt`); the actions
are in :mod:`~tropic.drivers.libvirt_compute` and :mod:`~tropic.drivers.libvirt_storage`, inventories and
provisioning in :mod:`~tropic.drivers.libvirt_inventory`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self

from tropic.drivers.libvirt_conn import (
    TEST_DEFAULT,
    Endpoint,
    is_bad_flags,
    is_missing,
    is_test_uri,
    load_binding,
    native_uri,
    translate,
)
from tropic.drivers.libvirt_xml import (
    ROLE_CONFIG,
    DomainInfo,
    domain_types,
    parse_domain,
    pool_xml,
    test_node_xml,
    volume_xml,
)
from tropic.errors import ConfigError, DriverError
from tropic.model import RUNNING, STOPPED, Model

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
TEST_NODE_SIZE = (16, 32768)  # CPUs, MiB of a private test hypervisor at most


class LibvirtHosts:
    """The state of the libvirt driver: which connection manages which host, and the shared plumbing."""

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
            self.manage_host(path, host_uri)
        for path, san_uri in (storage or {}).items():
            self.manage_storage_host(path, san_uri)

    # --- host -> connection mapping ------------------------------------------------------------------
    def manage_host(self, path: str, uri: str = "", *, size: tuple[int, int] | None = None) -> None:
        """Manage compute host ``path`` through ``uri`` (empty: the driver's URI). ``size``: the host's
        declared (CPUs, MiB); a private test hypervisor is made that large, up to the test node's size."""
        self._assign(self._hosts, path, uri, size)

    def manage_storage_host(self, path: str, uri: str = "") -> None:
        """Manage storage host ``path`` (its pools) through ``uri`` (empty: the driver's URI)."""
        self._assign(self._sans, path, uri)

    def _assign(
        self, role: dict[str, Endpoint], path: str, uri: str, size: tuple[int, int] | None = None
    ) -> None:
        with self._lock:
            old = role.get(path)
            new = role[path] = self._place(path, uri, role, size)
        if old is not None and old is not new and old.private:
            old.close()  # a private test hypervisor no one uses any more

    def bind(self, model: Model, *, devices: Iterable[str] | None = None) -> Self:
        """Map every host and storage host of ``model`` (only those in ``devices`` when given: the others
        belong to another backend) to its ``uri`` attribute (or the driver's URI)."""
        wanted = None if devices is None else set(devices)
        for path, node in model.nodes.items():
            if wanted is not None and path not in wanted:
                continue
            if node.kind == "host":
                size = (int(node.attrs["cpus"]), int(node.attrs["memory_mib"]))
                self.manage_host(path, str(node.attrs.get("uri", "")), size=size)
            elif node.kind == "storage_host":
                self.manage_storage_host(path, str(node.attrs.get("uri", "")))
        return self

    def unmanage(self, path: str) -> None:
        """Stop managing host or storage host ``path`` (a private test hypervisor is closed with it)."""
        with self._lock:
            eps = [e for e in (self._hosts.pop(path, None), self._sans.pop(path, None)) if e is not None]
            still = {id(e) for e in [*self._hosts.values(), *self._sans.values()]}
        for ep in eps:
            if ep.private and id(ep) not in still:
                ep.close()

    def in_process(self) -> bool:
        """Do all of this driver's devices live in this process (libvirt's test hypervisor), so that they
        start empty in every process?"""
        with self._lock:
            eps = [*self._hosts.values(), *self._sans.values()]
        network = self._network_uri or self.uri
        return is_test_uri(self.uri) and is_test_uri(network) and all(e.in_process for e in eps)

    def capacity(self, host: str) -> tuple[int, int] | None:
        """(CPUs, memory in MiB) of compute host ``host`` as its hypervisor reports them (``getInfo``)."""
        ep = self._host_ep(host)
        with self._on(ep, host, "read the node's capacity", host) as conn:
            info = conn.getInfo()  # [model, memory MiB, CPUs, MHz, NUMA nodes, sockets, cores, threads]
        return int(info[2]), int(info[1])

    def host_alive(self, host: str) -> bool | None:
        """Does the hypervisor of ``host`` answer (its node information is read)? None: not a host of
        this driver."""
        with self._lock:
            known = host in self._hosts
        if not known:
            return None
        try:
            self.capacity(host)
        except DriverError:
            return False
        return True

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

    def _place(
        self, path: str, uri: str, role: dict[str, Endpoint], size: tuple[int, int] | None = None
    ) -> Endpoint:
        """The endpoint for ``path`` (call with ``self._lock`` held)."""
        u = native_uri(uri) if uri else self.uri
        old = role.get(path)
        if u == TEST_DEFAULT:
            if old is not None and old.private:
                return old
            return self._private(path, size)
        if old is not None and old.uri == u:
            return old
        if role is self._hosts:
            for other, taken in self._hosts.items():
                if other != path and taken.uri == u:
                    raise ConfigError(
                        f"libvirt: hosts {other} and {path} both map to {u}; each compute host needs its own "
                        "libvirt connection (its domains would collide): give each host its `uri`, or start "
                        "a store from what the hypervisors hold (`tropic inventory discover URI...`)",
                        path=path,
                    )
        shared = self._by_uri.get(u)
        if shared is None:
            shared = self._by_uri[u] = Endpoint(u)
        return shared

    def _private(self, label: str, size: tuple[int, int] | None = None) -> Endpoint:
        """A fresh private test hypervisor, started from a node file of its own: as large as ``size``
        (declared CPUs, MiB; 0 when not declared) up to the test node's 16 CPUs and 32 GiB (a host declared
        larger does not fit its device, as on a real hypervisor)."""
        cpus, memory = TEST_NODE_SIZE
        if size is not None:  # a figure of 0 or less is not declared: the test node's own
            cpus = min(cpus, size[0]) if size[0] > 0 else cpus
            memory = min(memory, size[1]) if size[1] > 0 else memory
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="tropic-libvirt-")
        fd, node = tempfile.mkstemp(
            prefix=label.strip("/").replace("/", "_") + "-", suffix=".xml", dir=self._tmp
        )
        with os.fdopen(fd, "w") as f:
            f.write(test_node_xml(cpus, memory))
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
