"""Repair (model -> device): compensating procedures, and the plan that picks them for a list of drift.

Each repair procedure leaves the logical model as it is but logs the actions that drive the device back to
it: restarting a crashed VM is ``stop`` then ``start`` on a VM the model says is running (the device stops
it again, idempotently, then boots it). They are ordinary stored procedures in the default registry,
simulated, constraint-checked and locked like any other; they are marked as repairs so that they may act
on fenced resources (the only transactions that may).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tropic.model import RUNNING, STOPPED, VM, Host, Router, StorageHost, View, Volume, parent_of
from tropic.reconcile.base import Drift
from tropic.txn.controller import REPAIR_MARK
from tropic.txn.procedures import REGISTRY

Call = tuple[str, dict[str, Any]]


def repair_procedure(fn: Callable[..., None]) -> Callable[..., None]:
    """Register ``fn`` in the default registry as a repair: it may act on fenced resources."""
    setattr(fn, REPAIR_MARK, True)
    REGISTRY.register(fn)
    return fn


@repair_procedure
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


@repair_procedure
def restore_vm_size(view: View, *, vm: str) -> None:
    """Repair: give the VM on its device the vCPUs and memory the model has."""
    v = view.get(vm, VM)
    v.resize(vcpus=v.vcpus, memory_mib=v.memory_mib)


@repair_procedure
def recreate_vm(view: View, *, vm: str) -> None:
    """Repair: define (and boot, if the model says running) a VM that vanished from its host, as the model
    has it."""
    v = view.get(vm, VM)
    host = view.get(v.parent_path, Host)
    spec = v.snapshot()
    host.delete_vm(name=v.name)
    host.create_vm(name=v.name, **spec)


@repair_procedure
def remove_orphan_vm(view: View, *, host: str, name: str, vcpus: int, memory_mib: int) -> None:
    """Repair: delete a VM its host runs but the model does not know (e.g. left by a FAILED transaction)."""
    h = view.get(host, Host)
    had_config = name in h.configs
    h.create_vm(name=name, vcpus=vcpus, memory_mib=memory_mib, image="", volume="", state=STOPPED)
    h.delete_vm(name=name)
    if had_config:
        h.create_config(name=name)


@repair_procedure
def restore_config(view: View, *, host: str, name: str) -> None:
    """Repair: make the host hold VM configuration ``name`` exactly when the model says it does."""
    h = view.get(host, Host)
    if name in h.configs:
        h.delete_config(name=name)
        h.create_config(name=name)
    else:
        h.create_config(name=name)
        h.delete_config(name=name)


@repair_procedure
def restore_import(view: View, *, host: str, volume: str) -> None:
    """Repair: make the host import ``volume`` exactly when the model says it does."""
    h = view.get(host, Host)
    if volume in h.volumes:
        h.unimport_volume(volume=volume)
        h.import_volume(volume=volume)
    else:
        h.import_volume(volume=volume)
        h.unimport_volume(volume=volume)


@repair_procedure
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


@repair_procedure
def restore_export(view: View, *, volume: str) -> None:
    """Repair: export the volume on its device exactly when the model says exported."""
    vol = view.get(volume, Volume)
    if vol.exported:
        vol.unexport_volume()
        vol.export_volume()
    else:
        vol.export_volume()
        vol.unexport_volume()


@repair_procedure
def remove_orphan_volume(view: View, *, volume: str, image: str) -> None:
    """Repair: delete a volume its storage host holds but the model does not know (``image``: the name of
    the image on that storage host it was cloned from)."""
    san = view.get(parent_of(volume), StorageHost)
    name = volume.rsplit("/", 1)[1]
    san.clone_image(image=image, volume=name)
    san.delete_volume(volume=name)


@repair_procedure
def restore_next_hop(view: View, *, router: str) -> None:
    """Repair: set the router's next hop on the device to the model's."""
    r = view.get(router, Router)
    r.set_next_hop(next_hop=r.next_hop)


REPAIRS = (
    "restore_vm_state",
    "restore_vm_size",
    "recreate_vm",
    "remove_orphan_vm",
    "restore_config",
    "restore_import",
    "recreate_volume",
    "restore_export",
    "remove_orphan_volume",
    "restore_next_hop",
)


def plan(drifts: list[Drift]) -> tuple[list[list[Call]], list[Drift]]:
    """The repair calls for ``drifts`` in stages (storage, imports, VMs, VM details, routers: a stage runs
    after the previous one is over), and the drift no procedure can repair (with a note why)."""
    stages: list[dict[tuple[str, str], Call]] = [{} for _ in range(5)]
    cannot: list[Drift] = []
    recreated: set[str] = set()  # VMs defined again from scratch: their details and config come along

    def add(stage: int, proc: str, **args: Any) -> None:
        stages[stage].setdefault((proc, repr(sorted(args.items()))), (proc, args))

    def refuse(d: Drift, why: str) -> None:
        d.note = why
        cannot.append(d)

    ordered = sorted(drifts, key=lambda d: (d.attribute != "exists", d.path, d.attribute))
    for d in ordered:
        name = d.path.rsplit("/", 1)[1]
        if d.attribute == "reachable":
            refuse(d, f"{d.device} does not answer")
        elif d.kind in ("host", "storage_host", "router") and d.attribute == "exists":
            refuse(d, "tropic does not add or remove devices")
        elif d.kind == "image":
            refuse(d, "images are not managed by procedures: reload to accept what the device holds")
        elif d.kind == "volume":
            if d.attribute != "exists":
                add(0, "restore_export" if d.attribute == "exported" else "recreate_volume", volume=d.path)
            elif d.logical:
                add(0, "recreate_volume", volume=d.path)
            else:
                image = str((d.detail or {}).get("image", ""))
                if parent_of(image) != parent_of(d.path):
                    refuse(d, f"its image {image or '(unknown)'} is not on {parent_of(d.path)}: reload it")
                else:
                    add(0, "remove_orphan_volume", volume=d.path, image=image.rsplit("/", 1)[1])
        elif d.kind == "host":  # volume imports
            for volume in sorted(set(d.logical) ^ set(d.physical)):
                add(1, "restore_import", host=d.path, volume=volume)
        elif d.kind == "vm":
            _vm(d, name, add, recreated)
        elif d.kind == "router":
            add(4, "restore_next_hop", router=d.path)
        else:
            refuse(d, f"no repair for a {d.kind}")
    return [list(s.values()) for s in stages if s], cannot


def _vm(d: Drift, name: str, add: Callable[..., None], recreated: set[str]) -> None:
    host = parent_of(d.path)
    if d.attribute == "exists":
        recreated.add(d.path)
        if d.logical:
            add(2, "recreate_vm", vm=d.path)
        else:
            spec = d.detail or {}
            vcpus, memory = int(spec.get("vcpus", 1)), int(spec.get("memory_mib", 1))
            add(2, "remove_orphan_vm", host=host, name=name, vcpus=vcpus, memory_mib=memory)
    elif d.path in recreated:
        return  # defining the VM again brings its details and configuration with it
    elif d.attribute in ("image", "volume"):
        recreated.add(d.path)
        add(2, "recreate_vm", vm=d.path)
    elif d.attribute in ("vcpus", "memory_mib"):
        add(3, "restore_vm_size", vm=d.path)
    elif d.attribute == "state":
        add(3, "restore_vm_state", vm=d.path)
    elif d.attribute == "config":
        add(3, "restore_config", host=host, name=name)
