"""The committed model as a :class:`~tropic.autopilot.base.Snapshot`: hosts and VMs as plain data, with
each VM's predicted demand given by the caller (the predictor's answer; a VM without one is unknown).

:func:`fleet_snapshot` is what a snapshot source builds on; :func:`static_source` makes a
:data:`~tropic.autopilot.coordinator.SnapshotSource` from a model reader and a demand function (tests and
runs without sensors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tropic.autopilot.base import HostState, Snapshot, VMState
from tropic.model import ComputeRoot, Host, Model, Region

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
        return Snapshot(at, hosts, vms, stale)
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
    return Snapshot(at, hosts, vms, stale)


def static_source(
    read_model: Callable[[], Model],
    demand: Callable[[float], Mapping[str, float]],
    stale: Callable[[float], frozenset[str]] = lambda _at: frozenset(),
) -> Callable[[float], Snapshot]:
    """A snapshot source over ``read_model()`` with ``demand(at)`` and ``stale(at)``."""
    return lambda at: fleet_snapshot(read_model(), at, demand(at), stale(at))
