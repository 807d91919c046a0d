"""Replicated services across regions: create one, spawn and destroy members with their public addresses,
and move a member to another region with :func:`migrate_member`, one transaction of five steps:

1. reserve the destination: the VM's configuration on the destination host (its capacity, cordon and the
   service's spread are checked on the final placement, in simulation, before any device is touched);
2. make the member's image and volume present there: the image version's replica in the destination
   region (fetched through the image store when missing, :func:`tropic.procedures.images.ensure_replica`),
   a volume cloned from it, exported and imported on the destination host;
3. pre-copy: the live migration (:meth:`tropic.model.geo.Host.live_migrate`), its transfer time and
   downtime from :func:`tropic.geo.precopy.precopy` with the region pair's bandwidth and round trip;
4. switch the address: the overlay entry now reaches the VM at the destination;
5. release the source: the source volume unimported, unexported and deleted, the source configuration
   deleted.

Each step is an action paired with its undo: a failure anywhere leaves the member running where it was,
reached by its address, with nothing of the transaction in either region. The fetched image replica is
undone with the rest; a replica that stays after a *committed* migration is the image store's cached
copy (collected by ``gc_image`` once no version in use needs it).
"""

from __future__ import annotations

import json
from typing import Annotated

from tropic.errors import ModelError
from tropic.geo.precopy import precopy
from tropic.model import VM, StorageHost, View, Volume
from tropic.model.geo import (
    LINKS,
    OVERLAY,
    Address,
    AddressGroup,
    Links,
    Overlay,
    Root,
    address_name,
)
from tropic.model.geo import Host as GeoHost
from tropic.model.schema import Region
from tropic.model.services import SERVICES, Service, ServiceRoot
from tropic.procedures.base import Name, ProcedureFn
from tropic.procedures.images import ensure_replica, location
from tropic.procedures.placement import choose_host, scope_path
from tropic.procedures.services import create_service, destroy_service_member
from tropic.procedures.standard import MAX_VM_NAME_LENGTH, spawn_vm

REPLICATED = "replicated"


def replicated_service(view: View, service: str) -> Service:
    """The replicated service ``service`` (a name or a path)."""
    path = service if service.startswith("/") else f"{SERVICES}/{service}"
    svc = view.get(path, Service)
    if svc.service_kind != REPLICATED:
        raise ModelError(f"{svc.path} is a {svc.service_kind} service, not a replicated one", path=svc.path)
    return svc


def address_group(view: View, svc: Service) -> AddressGroup:
    return view.get(f"{OVERLAY}/{svc.name}", AddressGroup)


def member_address(view: View, svc: Service, uid: str) -> Address:
    """The public address member ``uid`` of ``svc`` holds."""
    for addr in address_group(view, svc).addresses():
        if addr.member == uid:
            return addr
    raise ModelError(f"member {uid} of {svc.path} holds no address", path=svc.path)


def links_between(view: View, a: str, b: str) -> tuple[float, float]:
    """(round trip in ms, bandwidth in MiB/s) between regions named ``a`` and ``b`` (``/links``, or its
    defaults when the model has none)."""
    links = view.get(LINKS, Links) if view.exists(LINKS) else None
    la, lb = location(view, a), location(view, b)
    if links is None:
        defaults = Links.attrs
        rtt = float(defaults["local_rtt_ms" if la == lb else "default_rtt_ms"].default)
        cap, window = float(defaults["bandwidth_mib_s"].default), float(defaults["window_mib"].default)
        return rtt, cap if rtt <= 0 else min(cap, window / (rtt / 1000.0))
    return links.rtt(la, lb), links.bandwidth(la, lb)


def set_links(
    view: View,
    *,
    rtt_json: str = "{}",
    default_rtt_ms: float = 150.0,
    local_rtt_ms: float = 1.0,
    bandwidth_mib_s: float = 1250.0,
    window_mib: float = 16.0,
) -> None:
    """Set the round trips between region locations (``rtt_json``: a latency matrix, either
    ``{"data": {src: {dst: ms}}}`` as cloudping publishes it or ``{src: {dst: ms}}``) and the bandwidth
    model (rate = min(bandwidth, window / rtt))."""
    try:
        data = json.loads(rtt_json)
    except ValueError as e:
        raise ModelError(f"{LINKS}: the latency matrix is not JSON: {e}", path=LINKS) from None
    matrix = data.get("data", data) if isinstance(data, dict) else None
    ok = isinstance(matrix, dict) and all(
        isinstance(row, dict) and all(isinstance(v, int | float) and v >= 0 for v in row.values())
        for row in matrix.values()
    )
    if not ok:
        raise ModelError(f"{LINKS}: the latency matrix must map region -> region -> ms (>= 0)", path=LINKS)
    if not view.exists(LINKS):
        view.get("/", Root).add_links()
    view.get(LINKS, Links).set_links(
        rtt_ms=matrix,
        default_rtt_ms=default_rtt_ms,
        local_rtt_ms=local_rtt_ms,
        bandwidth_mib_s=bandwidth_mib_s,
        window_mib=window_mib,
    )


def create_replicated_service(
    view: View,
    *,
    name: Annotated[str, Name()],
    image: str,
    vcpus: int,
    memory_mib: int,
    spread: str = "region",
    dirty_mib_s: float = 20.0,
    min_members: int = 1,
    max_members: int = 10,
) -> None:
    """Define a replicated service: members are VMs in regions (any provider), each with a public address
    on the overlay. ``image``: an image of the catalog (``/images/<name>``: its latest version, replicated
    to each member's region) or a storage path; ``spread``: members never share a ``region``, a
    ``failure_domain``, or ``none``; ``dirty_mib_s``: the guests' dirty rate, for the pre-copy model."""
    create_service(
        view,
        name=name,
        image=image,
        vcpus=vcpus,
        memory_mib=memory_mib,
        service_kind=REPLICATED,
        min_members=min_members,
        max_members=max_members,
    )
    if not view.exists(OVERLAY):
        view.get("/", Root).add_overlay_root()
    view.get(OVERLAY, Overlay).add_group(
        name=name, service=f"{SERVICES}/{name}", spread=spread, dirty_mib_s=dirty_mib_s
    )


def spawn_member(
    view: View, *, service: str, name: Annotated[str, Name(MAX_VM_NAME_LENGTH)], host: str
) -> None:
    """Spawn member VM ``name`` of a replicated service on ``host`` (its image replicated to the host's
    region first when missing) and give it a new public address."""
    svc = replicated_service(view, service)
    region = view.get(host, GeoHost).parent_path.rsplit("/", 1)[1]
    if svc.candidates and host not in svc.candidates:
        raise ModelError(f"{host} is not a candidate host of {svc.path}", path=svc.path)
    # spawned from the image's replica in the member's region (the service keeps naming its own image)
    replica = ensure_replica(view, svc.image, region)
    spawn_vm(view, name=name, image=replica, vcpus=svc.vcpus, memory_mib=svc.memory_mib, host=host)
    svc.add_member(vm=view.get(f"{host}/{name}", VM).uid)
    vm = view.get(f"{host}/{name}", VM)
    overlay = view.get(OVERLAY, Overlay)
    index = overlay.next_index
    overlay.take_index()
    ip = overlay.ip_at(index)
    address_group(view, svc).add_address(name=address_name(ip), ip=ip, member=vm.uid, vm=vm.path)


def destroy_member(view: View, *, service: str, vm: str) -> None:
    """Destroy member ``vm`` (a path, a name or the uid) and retire its public address."""
    svc = replicated_service(view, service)
    v = view.resolve(vm, VM)
    addr = member_address(view, svc, v.uid)
    address_group(view, svc).remove_address(name=addr.name)
    destroy_service_member(view, service=svc.path, vm=v.path)


def delete_replicated_service(view: View, *, service: str) -> None:
    """Destroy every member (retiring its address) and remove the service and its address group."""
    svc = replicated_service(view, service)
    for uid in list(svc.members):
        destroy_member(view, service=svc.path, vm=uid)
    view.get(OVERLAY, Overlay).remove_group(name=svc.name)
    view.get(SERVICES, ServiceRoot).remove_service(name=svc.name)


def migrate_member(view: View, *, service: str, member: str, dest: str = "", region: str = "") -> None:
    """Live-migrate member ``member`` (a VM path, name, ``region/name`` or uid) of replicated service
    ``service`` to host ``dest``, or to the best host of ``region``, in another region: reserve the
    destination, make the image and volume present there, pre-copy, switch the member's address, release
    the source (the module docstring). The address never changes; the pre-copy's transfer time and
    downtime are in the ``live_migrate`` step's arguments."""
    svc = replicated_service(view, service)
    v = view.resolve(member, VM)
    if v.uid not in svc.members:
        raise ModelError(f"{v.path} is not a member of {svc.path}", path=svc.path)
    if dest and region:
        raise ModelError(f"migration of {v.path}: give dest or region, not both", path=v.path)
    if not dest and not region:
        raise ModelError(f"migration of {v.path}: give a destination host or region", path=v.path)
    src = view.get(v.parent_path, GeoHost)
    src_region = view.get(src.parent_path, Region)
    if dest:
        d = view.get(dest, GeoHost)
    else:
        found = choose_host(view, vcpus=v.vcpus, memory_mib=v.memory_mib, scope=scope_path(region))
        d = view.get(found.path, GeoHost)
    dest_region = view.get(d.parent_path, Region)
    if dest_region.path == src_region.path:
        raise ModelError(
            f"{v.path} already runs in {src_region.path}: migrate_member moves a member to another region "
            "(migrate_vm moves a VM within one)",
            path=v.path,
        )
    if svc.candidates and d.path not in svc.candidates:
        raise ModelError(f"{d.path} is not a candidate host of {svc.path}", path=svc.path)
    view.check_free(f"{d.path}/{v.name}", VM)
    addr = member_address(view, svc, v.uid)
    group = address_group(view, svc)
    name = v.name
    old_volume = view.get(v.volume, Volume) if v.volume else None

    # 1. reserve the destination (its capacity is checked on the final placement by the constraints)
    d.create_config(name=name)
    # 2. the image (through the image store) and the volume, present in the destination region
    replica = ensure_replica(view, v.image, dest_region.name)
    dest_san = view.get(replica.rsplit("/", 1)[0], StorageHost)
    rtt_ms, bandwidth = links_between(view, src_region.name, dest_region.name)
    new_volume = ""
    disk_s = 0.0
    if old_volume is not None:
        vol_name = old_volume.name
        if view.exists(f"{dest_san.path}/{vol_name}"):
            raise ModelError(f"{dest_san.path}/{vol_name} already exists", path=dest_san.path)
        dest_san.clone_image(image=replica.rsplit("/", 1)[1], volume=vol_name)
        vol = dest_san.child(vol_name, Volume)
        vol.export_volume()
        d.import_volume(volume=vol.path)
        new_volume = vol.path
        disk_s = old_volume.size_gib * 1024 / bandwidth
    # 3. pre-copy, pause, resume at the destination
    pc = precopy(v.memory_mib, dirty_mib_s=group.dirty_mib_s, bandwidth_mib_s=bandwidth, rtt_ms=rtt_ms)
    src.live_migrate(
        name=name,
        dest=d.path,
        volume=new_volume,
        image=replica,
        transfer_s=round(pc.transfer_s + disk_s, 6),
        downtime_s=round(pc.downtime_s, 6),
        rounds=pc.rounds,
        sent_mib=round(pc.sent_mib, 3),
    )
    # 4. the address now reaches the member at the destination
    addr.switch_address(vm=f"{d.path}/{name}")
    # 5. release the source
    if old_volume is not None:
        old_san = view.get(old_volume.parent_path, StorageHost)
        src.unimport_volume(volume=old_volume.path)
        old_volume.unexport_volume()
        old_san.delete_volume(volume=old_volume.name)
    src.delete_config(name=name)


GEO_PROCEDURES: tuple[ProcedureFn, ...] = (
    set_links,
    create_replicated_service,
    delete_replicated_service,
    spawn_member,
    destroy_member,
    migrate_member,
)
