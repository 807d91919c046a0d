"""Placement inputs: host fleets, a batch from the Azure VM trace, or a generated batch.

Trace batches are read with :mod:`tropic.trace` (the trace itself stays in ``../shared/data``). The
constraints we attach to a tenant batch (the VMs one tenant requested in one 300 s bin) are our choice,
modelled on availability sets: at most :data:`TENANT_MAX_PER_HOST` of its VMs on one host
(anti-affinity), and at most half of them, rounded up, in one failure domain (rack), so a rack failure
never takes a whole multi-VM deployment down.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tropic.errors import ConfigError, InvalidArguments
from tropic.optimize.placement import (
    VM,
    AntiAffinity,
    Host,
    Level,
    PlacementConstraint,
    PlacementObjective,
    PlacementProblem,
    Spread,
)
from tropic.trace import iter_azure_vms

TENANT_MAX_PER_HOST = 4
HOST_VCPUS = 32
HOST_MEMORY_MIB = 128 * 1024
HOSTS_PER_RACK = 16
DEFAULT_IMAGE = "/storage/r1/san-1/img-ubuntu"
AZURE_TRACE_DIR = Path("../shared/data/azure-v1")

# (vcpus, memory GiB, relative frequency) of the generated batches: common general-purpose and
# memory-optimised sizes.
_GENERATED_FLAVORS = (
    (1, 2, 30),
    (2, 4, 25),
    (2, 8, 10),
    (4, 8, 12),
    (4, 16, 8),
    (8, 16, 6),
    (8, 32, 6),
    (16, 64, 3),
)


def make_hosts(
    count: int,
    *,
    vcpus: int = HOST_VCPUS,
    memory_mib: int = HOST_MEMORY_MIB,
    regions: Sequence[str] = ("r1",),
    hosts_per_rack: int = HOSTS_PER_RACK,
) -> tuple[Host, ...]:
    """``count`` identical hosts spread round-robin over ``regions``, racked ``hosts_per_rack`` at a time;
    paths look like ``/compute/r1/h0007``. A region of more than one host always spans at least two
    racks (smaller racks when it has fewer than ``2 * hosts_per_rack`` hosts): the batches' rack spread
    ("at most half of a tenant's VMs in one rack") cannot be met in a single rack."""
    if count < 1 or not regions or hosts_per_rack < 1:
        raise InvalidArguments("need at least one host, one region and one host per rack")
    per_region = math.ceil(count / len(regions))
    hosts_per_rack = max(1, min(hosts_per_rack, math.ceil(per_region / 2)))
    hosts = []
    for i in range(count):
        region = regions[i % len(regions)]
        local = i // len(regions)
        hosts.append(
            Host(
                f"/compute/{region}/h{local:04d}",
                vcpus,
                memory_mib,
                region,
                f"{region}/rack{local // hosts_per_rack:03d}",
            )
        )
    return tuple(hosts)


@dataclass(frozen=True)
class Batch:
    """VMs to place and the tenant groups they came in."""

    vms: tuple[VM, ...]
    tenants: tuple[tuple[str, ...], ...]
    source: str

    def constraints(self, *, max_per_host: int = TENANT_MAX_PER_HOST) -> tuple[PlacementConstraint, ...]:
        """Anti-affinity and rack spread per tenant (see the module docstring)."""
        out: list[PlacementConstraint] = []
        for members in self.tenants:
            if len(members) > max_per_host:
                out.append(AntiAffinity(members, max_per_host))
            if len(members) > 1:
                out.append(Spread(members, Level.FAILURE_DOMAIN, math.ceil(len(members) / 2)))
        return tuple(out)

    def problem(
        self,
        hosts: Sequence[Host],
        *,
        max_per_host: int = TENANT_MAX_PER_HOST,
        objective: PlacementObjective | None = None,
    ) -> PlacementProblem:
        return PlacementProblem(
            tuple(hosts),
            self.vms,
            self.constraints(max_per_host=max_per_host),
            objective or PlacementObjective(),
        )


def _group(vms: list[VM], batch_of: list[int]) -> tuple[tuple[str, ...], ...]:
    tenants: dict[int, list[str]] = {}
    for vm, b in zip(vms, batch_of, strict=True):
        tenants.setdefault(b, []).append(vm.name)
    return tuple(tuple(m) for m in tenants.values())


def trace_batch(arrivals: str | os.PathLike[str], count: int) -> Batch:
    """The first ``count`` VMs of an Azure trace; ``arrivals`` is its ``arrivals.txt`` or its directory."""
    if count < 1:
        raise InvalidArguments(f"need at least one VM, got {count}")
    path = Path(arrivals)
    if not path.exists():
        raise ConfigError(f"{path}: no such trace file or directory", path=str(path))
    directory = path if path.is_dir() else path.parent
    vms: list[VM] = []
    batch_of: list[int] = []
    for a in iter_azure_vms(directory, max_vms=count):
        vms.append(VM(f"vm{a.id:06d}", a.vcpus, a.memory_mib, image=DEFAULT_IMAGE))
        batch_of.append(a.batch)
    if len(vms) < count:
        raise InvalidArguments(f"the trace in {directory} has only {len(vms)} VMs, {count} asked")
    return Batch(tuple(vms), _group(vms, batch_of), f"azure:{directory}")


def generated_batch(count: int, seed: int = 0) -> Batch:
    """A random batch of ``count`` VMs in tenant groups of 1-12, with common cloud flavors."""
    if count < 1:
        raise InvalidArguments(f"need at least one VM, got {count}")
    rng = random.Random(seed)
    sizes = [(c, m) for c, m, _ in _GENERATED_FLAVORS]
    weights = [w for _, _, w in _GENERATED_FLAVORS]
    vms: list[VM] = []
    batch_of: list[int] = []
    tenant = 0
    while len(vms) < count:
        group = min(count - len(vms), rng.choice((1, 1, 1, 2, 2, 3, 4, 6, 8, 12)))
        flavor = rng.choices(sizes, weights)[0]
        for _ in range(group):
            # Tenants mostly ask for one size; some mix in a second one.
            c, m = flavor if rng.random() < 0.8 else rng.choices(sizes, weights)[0]
            vms.append(VM(f"vm{len(vms):06d}", c, m * 1024, image=DEFAULT_IMAGE))
            batch_of.append(tenant)
        tenant += 1
    return Batch(tuple(vms), _group(vms, batch_of), f"generated:seed={seed}")
