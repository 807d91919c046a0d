"""The standard schema: compute (regions, hosts, VMs), storage (storage hosts, images, volumes) and network
(networks, routers with next hops), with their actions, undo actions and shipped safety constraints.

Paths: ``/compute/<region>/<host>/<vm>``, ``/storage/<region>/<san>/<image-or-volume>``,
``/network/<network>/<router>``.
"""

from __future__ import annotations

from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Schema, Undo, Value, action, constraint, query, undo, undo_at
from tropic.model.recovery import HostRecovery

RUNNING = "running"
STOPPED = "stopped"
VM_STATES = (RUNNING, STOPPED)

# Attributes the fleet actions may set on a host, a storage host and a region (``configure``).
HOST_SETTABLE = ("cpus", "memory_mib", "cpu_overcommit", "uri", "driver", "failure_domain", "labels")
STORAGE_SETTABLE = ("capacity_gib", "uri", "driver", "labels")
REGION_SETTABLE = ("location", "timezone", "provider", "labels")


def _remove_empty(parent: Resource, name: str, cls: type[Resource], holds: str) -> Undo:
    """Remove child ``name`` of ``parent`` (a ``cls``) if it holds nothing; its undo re-adds it as it was."""
    child = parent.child(name, cls)
    left = [p.rsplit("/", 1)[1] for p in child._view.child_paths(child.path)]
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise ModelError(f"cannot remove {child.path}: it still holds {holds} {shown}", path=child.path)
    spec = child.snapshot()
    parent.remove_child(name)
    return undo(name=name, **spec)


def _configure(res: Resource, settable: tuple[str, ...], changes: dict[str, Value]) -> Undo:
    """Set some of ``settable`` on ``res``; the undo sets the old values back."""
    unknown = sorted(set(changes) - set(settable))
    if unknown:
        raise ModelError(f"{res.path}: cannot configure {unknown}; settable: {list(settable)}", path=res.path)
    old: dict[str, Value] = {}
    for key, value in changes.items():
        res.attrs[key].check(value, res.path)
        old[key] = getattr(res, key)
        setattr(res, key, value)
    return undo(**old)


class Root(Resource):
    kind = "root"


class _RegionHolder(Resource):
    """/compute and /storage: regions are added and removed below them."""

    @action(undo="remove_region")
    def add_region(
        self, *, name: str, location: str = "", timezone: str = "", provider: str = "", labels: Value = None
    ) -> Undo:
        self.add_child(
            Region, name, location=location, timezone=timezone, provider=provider, labels=dict(labels or {})
        )
        return undo(name=name)

    @action(undo="add_region")
    def remove_region(self, *, name: str) -> Undo:
        return _remove_empty(self, name, Region, "hosts")


class ComputeRoot(_RegionHolder):
    kind = "compute"


class StorageRoot(_RegionHolder):
    kind = "storage"


class NetworkRoot(Resource):
    kind = "network_root"

    @action(undo="remove_network")
    def add_network(self, *, name: str, cidr: str = "", driver: str = "") -> Undo:
        self.add_child(Network, name, cidr=cidr, driver=driver)
        return undo(name=name)

    @action(undo="add_network")
    def remove_network(self, *, name: str) -> Undo:
        return _remove_empty(self, name, Network, "routers")


class Region(Resource):
    """A region (under /compute or /storage): hosts or storage hosts live below it."""

    kind = "region"
    location = Attr(str, "", doc="where the region is, e.g. an AWS region code")
    timezone = Attr(str, "", doc="IANA time zone of the region, e.g. America/New_York")
    provider = Attr(str, "", doc="who runs the region's devices (a backend name), informational")
    labels = Attr(dict, {}, doc="operator labels, key -> value")

    @action(undo="remove_host")
    def add_host(
        self,
        *,
        name: str,
        cpus: int,
        memory_mib: int,
        cpu_overcommit: float = 4.0,
        uri: str = "",
        driver: str = "",
        failure_domain: str = "",
        labels: Value = None,
        cordoned: bool = False,
        configs: Value = None,
        volumes: Value = None,
    ) -> Undo:
        """Bring a hypervisor host under management (its driver checks that the device answers)."""
        if cpus < 1 or memory_mib < 1:
            raise ModelError(f"{self.path}/{name}: cpus and memory_mib must be positive", path=self.path)
        self.add_child(
            Host,
            name,
            cpus=cpus,
            memory_mib=memory_mib,
            cpu_overcommit=float(cpu_overcommit),
            uri=uri,
            driver=driver,
            failure_domain=failure_domain,
            labels=dict(labels or {}),
            cordoned=cordoned,
            configs=list(configs or []),
            volumes=list(volumes or []),
        )
        return undo(name=name)

    @action(undo="add_host")
    def remove_host(self, *, name: str) -> Undo:
        """Release a host; refused while it holds VMs, configurations or imported volumes."""
        host = self.child(name, Host)
        if host.configs or host.volumes:
            raise ModelError(
                f"cannot remove {host.path}: it still holds configurations {host.configs} "
                f"and imported volumes {host.volumes}",
                path=host.path,
            )
        return _remove_empty(self, name, Host, "VMs")

    @action(undo="remove_storage_host")
    def add_storage_host(
        self, *, name: str, capacity_gib: int = 100_000, uri: str = "", driver: str = "", labels: Value = None
    ) -> Undo:
        self.add_child(
            StorageHost, name, capacity_gib=capacity_gib, uri=uri, driver=driver, labels=dict(labels or {})
        )
        return undo(name=name)

    @action(undo="add_storage_host")
    def remove_storage_host(self, *, name: str) -> Undo:
        return _remove_empty(self, name, StorageHost, "images and volumes")

    @action(undo="configure")
    def configure(self, /, **changes: Value) -> Undo:
        """Set location, time zone, provider or labels."""
        return _configure(self, REGION_SETTABLE, changes)


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


class Host(HostRecovery):
    """A hypervisor host. ``uri`` is its device connection (e.g. a libvirt URI)."""

    kind = "host"
    vm_class = VM
    cpus = Attr(int)
    memory_mib = Attr(int)
    cpu_overcommit = Attr(float, 4.0, doc="allowed ratio of VM vCPUs to host CPUs")
    uri = Attr(str, "", doc="device connection URI")
    driver = Attr(str, "", doc="name of the backend that drives this host; empty: the server's default")
    failure_domain = Attr(str, "", doc="e.g. a rack: replicas and anti-affine VMs avoid sharing one")
    labels = Attr(dict, {}, doc="operator labels, key -> value")
    cordoned = Attr(bool, False, doc="no new VM may be placed on a cordoned host")
    cordon_vms = Attr(list, [], doc="names of the VMs on the host when it was cordoned: they may stay")
    configs = Attr(list, [], doc="names of VM configurations present on the host")
    volumes = Attr(list, [], doc="paths of volumes imported on the host")
    powered = Attr(bool, True, doc="powered on; a powered-off host holds no VM and takes none")

    @query
    def vms(self) -> Iterator[VM]:
        return self.children(VM)

    @action(undo="configure")
    def configure(self, /, **changes: Value) -> Undo:
        """Change capacity, overcommit, connection, driver, failure domain or labels (capacity is checked
        against the VMs by the constraints below)."""
        return _configure(self, HOST_SETTABLE, changes)

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

    @constraint
    def cordon_respected(self) -> Iterator[tuple[str, Resource]]:
        """No new placement on a cordoned host: only the VMs it held when cordoned may be on it (a VM that
        left it since may not come back)."""
        if not self.cordoned:
            return
        allowed = set(self.cordon_vms)
        for vm in self.children(VM):
            if vm.name not in allowed:
                yield (f"VM {vm.name} is placed on {self.path}, which is cordoned", self)

    @action(undo="uncordon", device=False)
    def cordon(self) -> Undo:
        """Refuse new VMs on this host from now on (model only: the scheduler's rule, not a device's)."""
        if self.cordoned:
            raise ModelError(f"{self.path} is already cordoned", path=self.path)
        self.cordoned = True
        self.cordon_vms = sorted(vm.name for vm in self.children(VM))
        return undo()

    @action(undo="cordon", device=False)
    def uncordon(self) -> Undo:
        """Accept new VMs on this host again."""
        if not self.cordoned:
            raise ModelError(f"{self.path} is not cordoned", path=self.path)
        if self.failed:
            raise ModelError(
                f"{self.path} is declared failed: declare it recovered (declare_host_recovered) before "
                "uncordoning it",
                path=self.path,
            )
        self.cordoned = False
        self.cordon_vms = []
        return undo()

    @constraint
    def powered_off_is_empty(self) -> Iterator[tuple[str, Resource]]:
        """A powered-off host holds no VM."""
        if not self.powered:
            for vm in self.children(VM):
                yield (f"VM {vm.name} is placed on {self.path}, which is powered off", vm)

    @action(undo="power_on")
    def power_off(self) -> Undo:
        """Power the host off (an emptied host saves its idle power). Refused while it holds VMs or VM
        configurations."""
        if not self.powered:
            raise ModelError(f"{self.path} is already powered off", path=self.path)
        vms = sorted(vm.name for vm in self.children(VM))
        if vms or self.configs:
            held = ", ".join(vms or list(self.configs))
            raise ModelError(f"{self.path} cannot be powered off: it holds {held}", path=self.path)
        self.powered = False
        return undo()

    @action(undo="power_off")
    def power_on(self) -> Undo:
        """Power the host on again."""
        if self.powered:
            raise ModelError(f"{self.path} is already powered on", path=self.path)
        self.powered = True
        return undo()

    def _forget_cordoned(self, name: str) -> None:
        """A VM leaving a cordoned host loses its place there (inside an action)."""
        if name in self.cordon_vms:
            self.cordon_vms = [n for n in self.cordon_vms if n != name]

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
        self._forget_cordoned(name)
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
        if self.driver and target.driver and self.driver != target.driver:
            raise ModelError(
                f"cannot migrate {vm.path} to {dest}: {self.path} is driven by the {self.driver} backend "
                f"and {dest} by {target.driver} (a migration stays within one backend)",
                path=vm.path,
            )
        spec = vm.snapshot()
        self.remove_child(name)
        self._forget_cordoned(name)
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

    @action(undo="remove_image")
    def add_image(self, *, name: str, size_gib: int = 10) -> Undo:
        """Register an image the storage host holds (its driver checks or provisions it)."""
        self.add_child(Image, name, size_gib=size_gib)
        return undo(name=name)

    @action(undo="add_image")
    def remove_image(self, *, name: str) -> Undo:
        img = self.child(name, Image)
        users = [v.name for v in self.children(Volume) if v.image == img.path]
        if users:
            raise ModelError(
                f"cannot remove {img.path}: volumes {users[:5]} were cloned from it", path=img.path
            )
        spec = img.snapshot()
        self.remove_child(name)
        return undo(name=name, **spec)

    @action(undo="configure")
    def configure(self, /, **changes: Value) -> Undo:
        """Change capacity, connection, driver or labels."""
        return _configure(self, STORAGE_SETTABLE, changes)

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

    @action(undo="remove_router")
    def add_router(self, *, name: str, role: str = "primary", next_hop: str = "", driver: str = "") -> Undo:
        if role not in ("primary", "backup"):
            raise ModelError(
                f"{self.path}/{name}: role must be primary or backup, not {role!r}", path=self.path
            )
        self.add_child(Router, name, role=role, next_hop=next_hop, driver=driver or self.driver)
        return undo(name=name)

    @action(undo="add_router")
    def remove_router(self, *, name: str) -> Undo:
        router = self.child(name, Router)
        via = [r.path for r in self.children(Router) if r.next_hop == router.path]
        if via:
            raise ModelError(f"cannot remove {router.path}: {via} use it as next hop", path=router.path)
        return _remove_empty(self, name, Router, "")


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

MODEL_ONLY_ACTIONS = STANDARD.model_actions()
"""Actions of the standard schema that change the model only: workers record them done without a device."""
