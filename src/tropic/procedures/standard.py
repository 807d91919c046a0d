"""The standard procedures over the standard schema: spawn, start, stop, destroy, migrate and resize a VM,
and set a router's next hop. ``spawn_vm`` without ``host`` and ``migrate_vm`` without ``dest`` choose the
host during simulation (:mod:`tropic.procedures.placement`).

A ``vm`` argument is a path, a name (unique within its region), ``region/name`` or a uid, resolved in
simulation (:meth:`View.resolve`): the action log records the path it resolved to."""

from __future__ import annotations

from typing import Annotated

from tropic.errors import ModelError
from tropic.model import MAX_NAME_LENGTH, VM, Host, Image, Router, StorageHost, View, Volume
from tropic.model.index import new_uid
from tropic.procedures.base import Name, ProcedureFn
from tropic.procedures.placement import choose_host, destination, scope_path

VOLUME_PREFIX = "vol-"
# A VM's volume is named after it, and that name follows the naming rule too.
MAX_VM_NAME_LENGTH = MAX_NAME_LENGTH - len(VOLUME_PREFIX)


def volume_name(vm_name: str) -> str:
    return f"{VOLUME_PREFIX}{vm_name}"


def spawn_vm(
    view: View,
    *,
    name: Annotated[str, Name(MAX_VM_NAME_LENGTH)],
    image: str,
    vcpus: int,
    memory_mib: int,
    host: str = "",
    region: str = "",
) -> None:
    """Clone the image into a volume, export it, import it on the host, then create and start the VM.
    ``name`` follows the naming rule (lowercase letters, digits, hyphens; at most 59 characters, so that
    its volume ``vol-<name>`` fits in 63). Without ``host``, the host is chosen during simulation: the
    best fit among the hosts of ``region`` (a name or a path; empty: every region) that are not cordoned
    and have the memory and vCPUs (reads, hence read-locks, the whole region). The name is unique within
    the region; the VM gets a new uid."""
    if vcpus < 1 or memory_mib < 1:
        where = host or scope_path(region)
        raise ModelError(f"spawn of {name} on {where}: vcpus and memory_mib must be positive", path=where)
    if host and region:
        raise ModelError(f"spawn of {name}: give host or region, not both", path=host)
    img = view.get(image, Image)
    san = view.get(img.parent_path, StorageHost)
    if host:
        h = view.get(host, Host)
    else:
        h = choose_host(view, vcpus=vcpus, memory_mib=memory_mib, scope=scope_path(region))
    view.check_free(f"{h.path}/{name}", VM)  # before its volume vol-<name> is cloned in the region
    vol_name = volume_name(name)
    san.clone_image(image=img.name, volume=vol_name)
    vol = san.child(vol_name, Volume)
    vol.export_volume()
    h.import_volume(volume=vol.path)
    h.create_vm(name=name, vcpus=vcpus, memory_mib=memory_mib, image=img.path, volume=vol.path, uid=new_uid())


def start_vm(view: View, *, vm: str) -> None:
    """Boot a stopped VM."""
    view.resolve(vm, VM).start()


def stop_vm(view: View, *, vm: str) -> None:
    """Shut a running VM down."""
    view.resolve(vm, VM).stop()


def destroy_vm(view: View, *, vm: str) -> None:
    """Stop and undefine the VM, then release and delete its volume."""
    v = view.resolve(vm, VM)
    h = view.get(v.parent_path, Host)
    volume = v.volume
    h.delete_vm(name=v.name)
    if volume:
        vol = view.get(volume, Volume)
        san = view.get(vol.parent_path, StorageHost)
        h.unimport_volume(volume=volume)
        vol.unexport_volume()
        san.delete_volume(volume=vol.name)


def migrate_vm(view: View, *, vm: str, dest: str = "", region: str = "") -> None:
    """Create the VM's configuration on ``dest``, live-migrate, delete the configuration on the source.
    Without ``dest``, the destination is chosen during simulation: the best fit among the other hosts of
    ``region`` (default: the VM's own region) that are not cordoned and can take it."""
    v = view.resolve(vm, VM)
    src = view.get(v.parent_path, Host)
    d = destination(view, v, dest=dest, region=region, what="migration")
    if d.path == src.path:
        raise ModelError(f"{vm} already runs on {dest}", path=vm)
    d.create_config(name=v.name)
    src.migrate(name=v.name, dest=d.path)
    src.delete_config(name=v.name)


def resize_vm(view: View, *, vm: str, vcpus: int, memory_mib: int) -> None:
    """Change a VM's vCPUs and memory (checked against its host's capacity)."""
    view.resolve(vm, VM).resize(vcpus=vcpus, memory_mib=memory_mib)


def set_next_hop(view: View, *, router: str, next_hop: str) -> None:
    """Point a router's next hop at another router (empty string: no next hop)."""
    view.get(router, Router).set_next_hop(next_hop=next_hop)


STANDARD_PROCEDURES: tuple[ProcedureFn, ...] = (
    spawn_vm,
    start_vm,
    stop_vm,
    destroy_vm,
    migrate_vm,
    resize_vm,
    set_next_hop,
)
