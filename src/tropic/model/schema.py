"""The standard schema: compute (regions, hosts, VMs), storage (storage hosts, images, volumes) and network
(networks, routers with next hops), with their actions, undo actions and shipped safety constraints.

Paths: ``/compute/<region>/<host>/<vm>``, ``/storage/<region>/<san>/<image-or-volume>``,
``/network/<network>/<router>``.
"""

from __future__ import annotations

from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Schema, Undo, action, constraint, query, undo, undo_at

RUNNING = "running"
STOPPED = "stopped"
VM_STATES = (RUNNING, STOPPED)


class Root(Resource):
    kind = "root"


class ComputeRoot(Resource):
    kind = "compute"


class StorageRoot(Resource):
    kind = "storage"


class NetworkRoot(Resource):
    kind = "network_root"


class Region(Resource):
    """A region (under /compute or /storage): hosts or storage hosts live below it."""

    kind = "region"
    location = Attr(str, "", doc="where the region is, e.g. an AWS region code")
    timezone = Attr(str, "", doc="IANA time zone of the region, e.g. America/New_York")
    provider = Attr(str, "", doc="who runs the region's devices (a backend name), informational")
    labels = Attr(dict, {}, doc="operator labels, key -> value")


# --- compute --------------------------------------------------------------------------------------------
class VM(Resource):
    """A virtual machine at ``/compute/<region>/<host>/<name>``: its name is unique within its region, and
    it is addressable by path, name, ``region/name`` or uid (:mod:`tropic.model.index`)."""

    kind = "vm"
    name_scope = 2
    vcpus = Attr(int)
    memory_mib = Attr(int)
    image = Attr(str, "", doc="path of the image the VM's volume was cloned from")
    volume = Attr(str, "", doc="path of the VM's volume")
    state = Attr(str, RUNNING)
    uid = Attr(str, "", doc="stable identity, kept across migrations (empty for VMs made before it)")
    labels = Attr(dict, {}, doc="operator labels, key -> value")

    @query
    def host(self) -> Host:
        return self._view.get(self.parent_path, Host)

    @action(undo="stop")
    def start(self) -> Undo:
        if self.state == RUNNING:
            raise ModelError(f"{self.path} is already running", path=self.path)
        self.state = RUNNING
        return undo()

    @action(undo="start")
    def stop(self) -> Undo:
        if self.state == STOPPED:
            raise ModelError(f"{self.path} is already stopped", path=self.path)
        self.state = STOPPED
        return undo()

    @action(undo="resize")
    def resize(self, *, vcpus: int, memory_mib: int) -> Undo:
        if vcpus < 1 or memory_mib < 1:
            raise ModelError(f"{self.path}: vcpus and memory_mib must be positive", path=self.path)
        old_vcpus, old_memory = self.vcpus, self.memory_mib
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        return undo(vcpus=old_vcpus, memory_mib=old_memory)


class Host(Resource):
    """A hypervisor host. ``uri`` is its device connection (e.g. a libvirt URI)."""

    kind = "host"
    cpus = Attr(int)
    memory_mib = Attr(int)
    cpu_overcommit = Attr(float, 4.0, doc="allowed ratio of VM vCPUs to host CPUs")
    uri = Attr(str, "", doc="device connection URI")
    driver = Attr(str, "", doc="name of the backend that drives this host; empty: the server's default")
    failure_domain = Attr(str, "", doc="e.g. a rack: replicas and anti-affine VMs avoid sharing one")
    labels = Attr(dict, {}, doc="operator labels, key -> value")
    cordoned = Attr(bool, False, doc="no new VM may be placed on a cordoned host")
    configs = Attr(list, [], doc="names of VM configurations present on the host")
    volumes = Attr(list, [], doc="paths of volumes imported on the host")

    @query
    def vms(self) -> Iterator[VM]:
        return self.children(VM)

    @query
    def used(self) -> tuple[int, int]:
        """(vcpus, memory_mib) used by the host's VMs."""
        cpus = mem = 0
        for vm in self.children(VM):
            cpus += vm.vcpus
            mem += vm.memory_mib
        return cpus, mem

    @constraint
    def memory_fits(self) -> Iterator[tuple[str, Resource]]:
        _, mem = self.used()
        if mem > self.memory_mib:
            yield (f"aggregate VM memory {mem} MiB exceeds host memory {self.memory_mib} MiB", self)

    @constraint
    def vcpus_fit(self) -> Iterator[tuple[str, Resource]]:
        cpus, _ = self.used()
        limit = self.cpus * self.cpu_overcommit
        if cpus > limit:
            yield (
                f"aggregate VM vCPUs {cpus} exceed {limit:g} ({self.cpus} CPUs x {self.cpu_overcommit:g})",
                self,
            )

    @constraint
    def vms_have_configs(self) -> Iterator[tuple[str, Resource]]:
        configs = set(self.configs)
        for vm in self.children(VM):
            if vm.name not in configs:
                yield (f"VM {vm.name} runs on {self.path} without a configuration there", vm)

    @action(undo="delete_vm")
    def create_vm(
        self,
        *,
        name: str,
        vcpus: int,
        memory_mib: int,
        image: str,
        volume: str,
        state: str = RUNNING,
        uid: str = "",
        labels: dict[str, str] | None = None,
    ) -> Undo:
        """Define the VM (with its configuration) and boot it when ``state`` is running. ``uid``: its
        stable identity (kept when it is recreated by an undo or moved by a migration)."""
        if volume and volume not in self.volumes:
            raise ModelError(f"volume {volume} is not imported on {self.path}", path=self.path)
        if state not in VM_STATES:
            raise ModelError(f"unknown VM state {state!r}", path=self.path)
        self.add_child(
            VM,
            name,
            vcpus=vcpus,
            memory_mib=memory_mib,
            image=image,
            volume=volume,
            state=state,
            uid=uid,
            labels=dict(labels or {}),
        )
        if name not in self.configs:
            self.configs = [*self.configs, name]
        return undo(name=name)

    @action(undo="create_vm")
    def delete_vm(self, *, name: str) -> Undo:
        """Stop (if running) and undefine the VM, removing its configuration."""
        vm = self.child(name, VM)
        spec = vm.snapshot()
        self.remove_child(name)
        self.configs = [c for c in self.configs if c != name]
        return undo(name=name, **spec)

    @action(undo="delete_config")
    def create_config(self, *, name: str) -> Undo:
        if name in self.configs:
            raise ResourceExists(f"configuration {name} already exists on {self.path}", path=self.path)
        self.configs = [*self.configs, name]
        return undo(name=name)

    @action(undo="create_config")
    def delete_config(self, *, name: str) -> Undo:
        if name not in self.configs:
            raise ModelError(f"no configuration {name} on {self.path}", path=self.path)
        self.configs = [c for c in self.configs if c != name]
        return undo(name=name)

    @action(undo="migrate")
    def migrate(self, *, name: str, dest: str) -> Undo:
        """Live-migrate VM ``name`` to host ``dest``; its volume import moves with it."""
        vm = self.child(name, VM)
        target = self._view.get(dest, Host)
        if target.path == self.path:
            raise ModelError(f"{vm.path} is already on {dest}", path=vm.path)
        spec = vm.snapshot()
        self.remove_child(name)
        target.add_child(VM, name, **spec)
        volume = spec["volume"]
        if volume:
            self.volumes = [v for v in self.volumes if v != volume]
            if volume not in target.volumes:
                target.volumes = [*target.volumes, volume]
        return undo_at(dest, name=name, dest=self.path)

    @action(undo="unimport_volume")
    def import_volume(self, *, volume: str) -> Undo:
        vol = self._view.get(volume, Volume)
        if not vol.exported:
            raise ModelError(
                f"volume {volume} must be exported before {self.path} can import it", path=volume
            )
        if volume in self.volumes:
            raise ResourceExists(f"volume {volume} is already imported on {self.path}", path=self.path)
        self.volumes = [*self.volumes, volume]
        return undo(volume=volume)

    @action(undo="import_volume")
    def unimport_volume(self, *, volume: str) -> Undo:
        if volume not in self.volumes:
            raise ModelError(f"volume {volume} is not imported on {self.path}", path=self.path)
        self.volumes = [v for v in self.volumes if v != volume]
        return undo(volume=volume)


# --- storage --------------------------------------------------------------------------------------------
class Image(Resource):
    kind = "image"
    size_gib = Attr(int, 10)


class Volume(Resource):
    kind = "volume"
    image = Attr(str, "", doc="path of the image this volume was cloned from")
    size_gib = Attr(int, 10)
    exported = Attr(bool, False)

    @action(undo="unexport_volume")
    def export_volume(self) -> Undo:
        if self.exported:
            raise ModelError(f"volume {self.path} is already exported", path=self.path)
        self.exported = True
        return undo()

    @action(undo="export_volume")
    def unexport_volume(self) -> Undo:
        if not self.exported:
            raise ModelError(f"volume {self.path} is not exported", path=self.path)
        self.exported = False
        return undo()


class StorageHost(Resource):
    """A storage server (SAN) holding images and the volumes cloned from them."""

    kind = "storage_host"
    capacity_gib = Attr(int, 100_000)
    uri = Attr(str, "", doc="device connection URI")
    driver = Attr(str, "", doc="name of the backend that drives this storage host; empty: the default")
    labels = Attr(dict, {}, doc="operator labels, key -> value")

    @action(undo="delete_volume")
    def clone_image(self, *, image: str, volume: str) -> Undo:
        img = self.child(image, Image)
        self.add_child(Volume, volume, image=img.path, size_gib=img.size_gib)
        return undo(volume=volume)

    @action(undo="clone_image")
    def delete_volume(self, *, volume: str) -> Undo:
        vol = self.child(volume, Volume)
        if vol.exported:
            raise ModelError(f"volume {vol.path} is still exported", path=vol.path)
        image = vol.image.rsplit("/", 1)[1]
        self.remove_child(volume)
        return undo(image=image, volume=volume)


# --- network --------------------------------------------------------------------------------------------
class Network(Resource):
    kind = "net"
    cidr = Attr(str, "")
    driver = Attr(str, "", doc="name of the backend that drives this network's routers; empty: the default")


class Router(Resource):
    kind = "router"
    role = Attr(str, "primary", doc="primary or backup")
    next_hop = Attr(str, "", doc="path of the next-hop router, empty for none")
    driver = Attr(str, "", doc="name of the backend that drives this router; empty: the network's")

    @constraint
    def primary_not_via_backup(self) -> Iterator[tuple[str, Resource]]:
        """The seed rule (an EC2 outage): a primary router's next hop must not be a backup router."""
        if self.role == "primary" and self.next_hop:
            hop = self._view.get(self.next_hop, Router)
            if hop.role == "backup":
                yield (f"primary router's next hop {hop.path} is a backup router", self)

    @action(undo="set_next_hop")
    def set_next_hop(self, *, next_hop: str) -> Undo:
        if next_hop:
            self._view.get(next_hop, Router)  # must exist and be a router
            if next_hop == self.path:
                raise ModelError(f"{self.path} cannot be its own next hop", path=self.path)
        old = self.next_hop
        self.next_hop = next_hop
        return undo(next_hop=old)


STANDARD = Schema()
for _cls in (
    Root,
    ComputeRoot,
    StorageRoot,
    NetworkRoot,
    Region,
    VM,
    Host,
    Image,
    Volume,
    StorageHost,
    Network,
    Router,
):
    STANDARD.register(_cls)
