"""The committed model as a :class:`~tropic.autopilot.base.Snapshot`: hosts and VMs as plain data, with
each VM's predicted demand given by the caller (the predictor's answer; a VM without one is unknown).

:func:`fleet_snapshot` is what a snapshot source builds on; :func:`static_source` makes a
:data:`~tropic.autopilot.coordinator.SnapshotSource` from a model reader and a demand function (tests and
runs without sensors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tropic.autopilot.base import HostState, ImageState, ImageVersionState, ServiceState, Snapshot, VMState
from tropic.errors import TropicError
from tropic.model import VM, ComputeRoot, Host, Model, Region, View
from tropic.model.geo import IMAGES
from tropic.model.images import GeoImage, ImageVersion, in_use
from tropic.model.services import SERVICES, Service

COMPUTE = "/compute"


def fleet_snapshot(
    model: Model,
    at: float,
    demand: Mapping[str, float] | None = None,
    stale: frozenset[str] = frozenset(),
) -> Snapshot:
    """The hosts under ``/compute`` and their VMs; ``demand``: VM path -> predicted CPU demand in cores
    (missing: unknown); ``stale``: the hosts and VMs whose sensors are too old to trust."""
    demand = demand or {}
    view = model.reader()
    hosts: dict[str, HostState] = {}
    vms: dict[str, VMState] = {}
    if COMPUTE not in model:
        return Snapshot(at, hosts, vms, stale, read_services(view), read_images(view))
    for region in view.get(COMPUTE, ComputeRoot).children(Region):
        for h in region.children(Host):
            paths = []
            for v in h.vms():
                paths.append(v.path)
                vms[v.path] = VMState(
                    path=v.path,
                    host=h.path,
                    vcpus=v.vcpus,
                    memory_mib=v.memory_mib,
                    uid=v.uid,
                    demand=demand.get(v.path),
                    labels=dict(v.labels),
                )
            hosts[h.path] = HostState(
                path=h.path,
                region=region.name,
                cpus=h.cpus,
                memory_mib=h.memory_mib,
                cpu_overcommit=h.cpu_overcommit,
                failure_domain=h.failure_domain,
                cordoned=h.cordoned,
                powered=h.powered,
                driver=h.driver,
                vms=tuple(paths),
                labels=dict(h.labels),
            )
    return Snapshot(at, hosts, vms, stale, read_services(view), read_images(view))


def static_source(
    read_model: Callable[[], Model],
    demand: Callable[[float], Mapping[str, float]],
    stale: Callable[[float], frozenset[str]] = lambda _at: frozenset(),
) -> Callable[[float], Snapshot]:
    """A snapshot source over ``read_model()`` with ``demand(at)`` and ``stale(at)``."""
    return lambda at: fleet_snapshot(read_model(), at, demand(at), stale(at))


def read_services(view: View) -> dict[str, ServiceState]:
    """The managed services of a model view as :class:`ServiceState`\\ s (members as VM paths; a member
    whose VM is gone is left out), for the snapshot a pass builds."""
    if not view.exists(SERVICES):
        return {}
    out: dict[str, ServiceState] = {}
    for path in sorted(view.child_paths(SERVICES)):
        svc = view.get(path, Service)
        members: list[str] = []
        for uid in svc.members:
            try:
                members.append(view.resolve(uid, VM).path)
            except TropicError:
                continue
        out[path] = ServiceState(
            path=path,
            service_kind=svc.service_kind,
            image=svc.image,
            vcpus=svc.vcpus,
            memory_mib=svc.memory_mib,
            region=svc.region,
            candidates=tuple(svc.candidates),
            min_members=svc.min_members,
            max_members=svc.max_members,
            members=tuple(members),
        )
    return out


def read_images(view: View) -> dict[str, ImageState]:
    """The image catalog of a model view as :class:`ImageState`\\ s (versions oldest first, each with why
    it is in use), for the snapshot a pass builds."""
    if not view.exists(IMAGES):
        return {}
    out: dict[str, ImageState] = {}
    for path in sorted(view.child_paths(IMAGES)):
        img = view.get(path, GeoImage)
        versions = sorted(img.children(ImageVersion), key=lambda v: v.version)
        out[path] = ImageState(
            path=path,
            latest=img.latest,
            versions=tuple(
                ImageVersionState(v.version, v.published_at, v.size_mib, tuple(in_use(view, v)))
                for v in versions
            ),
        )
    return out
