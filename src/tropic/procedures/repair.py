"""Repair procedures (model -> device): compensating procedures for drift found by :mod:`tropic.reconcile`.

Each leaves the logical model as it is but logs the actions that drive the device back to it: restarting a
crashed VM is ``stop`` then ``start`` on a VM the model says is running (the device stops it again,
idempotently, then boots it). They are simulated, constraint-checked and locked like any other procedure;
the registry marks them as repairs (:attr:`~tropic.procedures.base.Procedure.repairs_fences`), the only
procedures that may act on fenced resources.
"""

from __future__ import annotations

from tropic.errors import ResourceExists
from tropic.model import RUNNING, STOPPED, VM, Host, Router, StorageHost, View, Volume, parent_of
from tropic.procedures.base import ProcedureFn


def restore_vm_state(view: View, *, vm: str) -> None:
    """Repair: drive the VM on its device to the model's state (restart a crashed VM; stop one that runs
    when it should not). The model is unchanged."""
    v = view.get(vm, VM)
    if v.state == RUNNING:
        v.stop()
        v.start()
    else:
        v.start()
        v.stop()


def restore_vm_size(view: View, *, vm: str) -> None:
    """Repair: give the VM on its device the vCPUs and memory the model has."""
    v = view.get(vm, VM)
    v.resize(vcpus=v.vcpus, memory_mib=v.memory_mib)


def recreate_vm(view: View, *, vm: str) -> None:
    """Repair: define (and boot, if the model says running) a VM that vanished from its host, as the model
    has it."""
    v = view.get(vm, VM)
    host = view.get(v.parent_path, Host)
    spec = v.snapshot()
    host.delete_vm(name=v.name)
    host.create_vm(name=v.name, **spec)


def remove_orphan_vm(view: View, *, host: str, name: str, vcpus: int, memory_mib: int) -> None:
    """Repair: delete a VM its host runs but the model does not know (e.g. left by a FAILED transaction)."""
    h = view.get(host, Host)
    had_config = name in h.configs
    try:
        view.check_free(f"{host}/{name}", VM)
    except ResourceExists:  # the name is another VM's now (rebuilt elsewhere while this host was dead)
        h.discard_domain(name=name, vcpus=vcpus, memory_mib=memory_mib)
    else:
        h.create_vm(name=name, vcpus=vcpus, memory_mib=memory_mib, image="", volume="", state=STOPPED)
        h.delete_vm(name=name)
    if had_config:
        h.create_config(name=name)


def restore_config(view: View, *, host: str, name: str) -> None:
    """Repair: make the host hold VM configuration ``name`` exactly when the model says it does."""
    h = view.get(host, Host)
    if name in h.configs:
        h.delete_config(name=name)
        h.create_config(name=name)
    else:
        h.create_config(name=name)
        h.delete_config(name=name)


def restore_import(view: View, *, host: str, volume: str) -> None:
    """Repair: make the host import ``volume`` exactly when the model says it does."""
    h = view.get(host, Host)
    if volume in h.volumes:
        h.unimport_volume(volume=volume)
        h.import_volume(volume=volume)
    else:
        h.import_volume(volume=volume)
        h.unimport_volume(volume=volume)


def recreate_volume(view: View, *, volume: str) -> None:
    """Repair: clone a volume that vanished from its storage host again from its image (its data is lost)
    and export it if the model says exported; imports on hosts are left as they are."""
    vol = view.get(volume, Volume)
    san = view.get(vol.parent_path, StorageHost)
    exported = vol.exported
    image = vol.image.rsplit("/", 1)[1]
    if exported:
        vol.unexport_volume()
    san.delete_volume(volume=vol.name)
    san.clone_image(image=image, volume=vol.name)
    if exported:
        san.child(vol.name, Volume).export_volume()


def restore_export(view: View, *, volume: str) -> None:
    """Repair: export the volume on its device exactly when the model says exported."""
    vol = view.get(volume, Volume)
    if vol.exported:
        vol.unexport_volume()
        vol.export_volume()
    else:
        vol.export_volume()
        vol.unexport_volume()


def remove_orphan_volume(view: View, *, volume: str, image: str) -> None:
    """Repair: delete a volume its storage host holds but the model does not know (``image``: the name of
    the image on that storage host it was cloned from)."""
    san = view.get(parent_of(volume), StorageHost)
    name = volume.rsplit("/", 1)[1]
    san.clone_image(image=image, volume=name)
    san.delete_volume(volume=name)


def restore_next_hop(view: View, *, router: str) -> None:
    """Repair: set the router's next hop on the device to the model's."""
    r = view.get(router, Router)
    r.set_next_hop(next_hop=r.next_hop)


REPAIR_PROCEDURES: tuple[ProcedureFn, ...] = (
    restore_vm_state,
    restore_vm_size,
    recreate_vm,
    remove_orphan_vm,
    restore_config,
    restore_import,
    recreate_volume,
    restore_export,
    remove_orphan_volume,
    restore_next_hop,
)
