"""Recovering the VMs of a dead host: declare the host failed, then rebuild each VM elsewhere.

A live migration needs a source that answers; a host that lost power, failed or cannot be reached does
not. Its VMs' volumes live on their storage hosts and survive it, so each VM is *rebuilt*: its volume
imported on a healthy host, the VM defined and booted there with the same name, uid, size, image, state
and labels, its public address (if a replicated service's overlay holds one) pointed at the new place,
and only then the dead host's record of it (configuration, volume import) released.

``declare_host_failed`` records the death (``Host.failed``) and cordons the host; its device step is a
check that refuses a host that answers (:meth:`tropic.drivers.base.FleetDriver.declare_failed`).
``rebuild_vm`` refuses a VM whose host is not declared failed: a live host's VMs are migrated.
"""

from __future__ import annotations

from tropic.errors import ModelError
from tropic.model import VM, Host, View, Volume
from tropic.model.geo import OVERLAY, Address, AddressGroup, Overlay
from tropic.procedures.base import ProcedureFn
from tropic.procedures.placement import choose_host, scope_path


def declare_host_failed(view: View, *, host: str) -> None:
    """Record that ``host`` is dead (lost power, failed, unreachable) and cordon it: it takes no VM, and
    its VMs can then be rebuilt elsewhere with ``rebuild_vm``. Refused when the host's device answers."""
    h = view.get(host, Host)
    if not h.cordoned:
        h.cordon()
    h.declare_failed()


def declare_host_recovered(view: View, *, host: str) -> None:
    """``host`` answers again; it stays cordoned (``uncordon_host`` returns it to service). A VM rebuilt
    elsewhere meanwhile left a stale domain on its device: ``tropic drift`` reports it, ``repair`` removes
    it. Runs even while those stale domains are fenced as drift."""
    view.get(host, Host).declare_recovered()


def _addresses_of(view: View, uid: str) -> list[Address]:
    """The overlay addresses held by the member VM of uid ``uid`` (it keeps them when rebuilt)."""
    if not uid or not view.exists(OVERLAY):
        return []
    out: list[Address] = []
    for group in view.get(OVERLAY, Overlay).children(AddressGroup):
        out.extend(a for a in group.children(Address) if a.member == uid)
    return out


def rebuild_vm(view: View, *, vm: str, dest: str = "", region: str = "") -> None:
    """Rebuild VM ``vm`` of a host declared failed on a healthy host: import its volume there, define
    and boot it with the same name, uid, size, image, state and labels, point its public addresses at
    it, then release the failed host's record of it. Without ``dest`` the host is chosen during
    simulation, as for ``migrate_vm``: the best fit among the other hosts of ``region`` (default: the
    VM's region; ``/compute``: any). Refused when the VM's host is alive (migrate it instead)."""
    v = view.resolve(vm, VM)
    src = view.get(v.parent_path, Host)
    if not src.failed:
        raise ModelError(
            f"cannot rebuild {v.path}: its host {src.path} is alive (not declared failed); "
            "migrate it instead (migrate_vm), or declare the host failed (declare_host_failed)",
            path=v.path,
        )
    job = v.labels.get("job") if isinstance(v.labels, dict) else None
    if job:
        raise ModelError(
            f"cannot rebuild {v.path}: it is a replica of job {job}, which the job healer replaces "
            "(replace_job_replica)",
            path=v.path,
        )
    if dest and region:
        raise ModelError(f"rebuild of {vm}: give dest or region, not both", path=v.path)
    if dest:
        d = view.get(dest, Host)
    else:
        scope = scope_path(region) if region else src.parent_path
        d = choose_host(view, vcpus=v.vcpus, memory_mib=v.memory_mib, scope=scope, exclude=src.path)
    if d.path == src.path:
        raise ModelError(f"cannot rebuild {v.path} on its own failed host {src.path}", path=v.path)
    if d.failed:
        raise ModelError(f"cannot rebuild {v.path} on {d.path}: it is declared failed too", path=d.path)
    spec = v.snapshot()
    volume = str(spec["volume"])
    if volume:
        view.get(volume, Volume)  # the volume survives the host: it lives on its storage host
        d.import_volume(volume=volume)
    d.recreate_vm(
        name=v.name,
        source=src.path,
        vcpus=v.vcpus,
        memory_mib=v.memory_mib,
        image=str(spec["image"]),
        volume=volume,
        state=str(spec["state"]),
        uid=str(spec["uid"]),
        labels=spec["labels"],
    )
    new_path = f"{d.path}/{v.name}"
    for addr in _addresses_of(view, str(spec["uid"])):
        addr.switch_address(vm=new_path)
    src.release_vm(name=v.name, volume=volume)


REBUILD_PROCEDURES: tuple[ProcedureFn, ...] = (declare_host_failed, rebuild_vm)
# May run on a host whose stale domains are fenced as drift (reading the failed host names them): the
# recovery comes before the repair that removes them.
REBUILD_REPAIRS: tuple[ProcedureFn, ...] = (declare_host_recovered,)
