"""Choosing a host during simulation: what ``spawn_vm`` without ``host`` and ``migrate_vm`` without
``dest`` do, with the fit rule of :mod:`tropic.model.fit` (the same one the optimizer plans with).

The choice reads the hosts of the scope (a region, or all of ``/compute``) through the transaction's
view, so it is part of the transaction: the scope's child list and every host and VM in it are in the
read set, the transaction holds a read lock on the whole scope while it runs, and the chosen host is
checked by the constraints like any other. The cost is O(hosts + VMs in the scope) per simulation, and
transactions that choose in the same scope run one after the other (each sees the previous one's VMs);
give a region to keep both to that region, or a host to avoid them.
"""

from __future__ import annotations

from tropic.errors import NoHostFits
from tropic.model import VM, ComputeRoot, Host, Region, Resource, View
from tropic.model.fit import Candidate, choose, why_none

COMPUTE = "/compute"


def scope_path(region: str) -> str:
    """``r1`` or ``/compute/r1`` -> ``/compute/r1``; empty -> ``/compute`` (every region)."""
    if not region:
        return COMPUTE
    return region if region.startswith("/") else f"{COMPUTE}/{region}"


def candidates(view: View, scope: str) -> list[Candidate]:
    """Every host of ``scope`` (a region's path, or ``/compute``) as the fit rule sees it."""
    root: Resource = view.get(scope, ComputeRoot if scope == COMPUTE else Region)
    regions = list(root.children(Region)) if scope == COMPUTE else [root]
    out: list[Candidate] = []
    for region in regions:
        for h in region.children(Host):
            out.append(
                Candidate.of(
                    h.path,
                    cpus=h.cpus,
                    overcommit=h.cpu_overcommit,
                    memory_mib=h.memory_mib,
                    used=h.used(),
                    cordoned=h.cordoned,
                    powered=h.powered,
                    failed=h.failed,
                )
            )
    return out


def choose_host(view: View, *, vcpus: int, memory_mib: int, scope: str, exclude: str = "") -> Host:
    """The preferred host of ``scope`` for a VM of this size (never ``exclude``); :class:`NoHostFits`
    naming, per reason, the hosts that cannot take it."""
    cands = [c for c in candidates(view, scope) if c.path != exclude]
    best = choose(cands, vcpus, memory_mib)
    if best is None:
        where = f"in {scope}" + (f" other than {exclude}" if exclude else "")
        raise NoHostFits(why_none(cands, vcpus, memory_mib, where), path=scope)
    return view.get(best.path, Host)


def region_of(vm: VM) -> str:
    """The region path a VM's host is in."""
    return vm.host().parent_path
