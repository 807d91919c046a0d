"""Which host can take a VM, which one to prefer, and why none can: the one copy of the fit rule.

Plain data in, plain data out, so the same rule serves a procedure choosing a host during simulation
(:mod:`tropic.procedures.placement`) and the optimizer planning many moves at once (draining a host,
:mod:`tropic.optimize.drain`). The capacities mirror the schema's constraints: a host takes a VM when its
VMs' memory stays within ``memory_mib`` (``Host.memory_fits``), their vCPUs within ``cpus x
cpu_overcommit`` (``Host.vcpus_fit``), it is not cordoned (``Host.cordon_respected``) and it is powered on
(``Host.powered_off_is_empty``).

Preference is best fit: the candidate left with the least free memory, then the fewest free vCPUs, then
the smallest path. It packs VMs onto hosts already in use (as the optimizer's objective does) and is
deterministic, so a re-simulation of the same request on the same model chooses the same host.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Candidate:
    """A host as the fit rule sees it: its path, free capacity and whether it takes new VMs."""

    path: str
    vcpus_free: int  # floor(cpus x cpu_overcommit) minus the vCPUs of its VMs
    memory_free: int  # MiB
    cordoned: bool = False
    powered: bool = True
    failed: bool = False  # declared dead (Host.failed): answers nothing

    @staticmethod
    def of(
        path: str,
        *,
        cpus: int,
        overcommit: float,
        memory_mib: int,
        used: tuple[int, int],
        cordoned: bool,
        powered: bool = True,
        failed: bool = False,
    ) -> Candidate:
        """From a host's attributes and ``used`` (vCPUs, MiB) of its VMs."""
        return Candidate(
            path, math.floor(cpus * overcommit) - used[0], memory_mib - used[1], cordoned, powered, failed
        )

    @property
    def open(self) -> bool:
        """Takes new VMs at all (not cordoned, powered on, not declared failed)."""
        return not self.cordoned and self.powered and not self.failed

    def fits(self, vcpus: int, memory_mib: int) -> bool:
        return self.open and self.vcpus_free >= vcpus and self.memory_free >= memory_mib

    def take(self, vcpus: int, memory_mib: int) -> Candidate:
        """This host after a VM of that size lands on it."""
        return replace(self, vcpus_free=self.vcpus_free - vcpus, memory_free=self.memory_free - memory_mib)


def _preference(c: Candidate, vcpus: int, memory_mib: int) -> tuple[int, int, str]:
    return (c.memory_free - memory_mib, c.vcpus_free - vcpus, c.path)


def choose(candidates: Iterable[Candidate], vcpus: int, memory_mib: int) -> Candidate | None:
    """The preferred candidate that can take a VM of ``vcpus`` and ``memory_mib`` (None: none can)."""
    fitting = [c for c in candidates if c.fits(vcpus, memory_mib)]
    if not fitting:
        return None
    return min(fitting, key=lambda c: _preference(c, vcpus, memory_mib))


def why_none(candidates: Iterable[Candidate], vcpus: int, memory_mib: int, where: str) -> str:
    """Why no candidate takes the VM, counted per reason, e.g. ``no host in /compute/us-east fits 4
    vCPUs/8192 MiB: 3 cordoned, 9 without memory (largest free 2048 MiB)``."""
    cands = list(candidates)
    head = f"no host {where} fits {vcpus} vCPUs/{memory_mib} MiB"
    if not cands:
        return f"{head}: there is no candidate host"
    cordoned = [c for c in cands if c.cordoned]
    off = [c for c in cands if not c.cordoned and not c.powered]
    failed = [c for c in cands if not c.cordoned and c.powered and c.failed]
    open_ = [c for c in cands if c.open]
    no_mem = [c for c in open_ if c.memory_free < memory_mib]
    no_cpu = [c for c in open_ if c.memory_free >= memory_mib and c.vcpus_free < vcpus]
    parts: list[str] = []
    if cordoned:
        parts.append(f"{len(cordoned)} cordoned")
    if off:
        parts.append(f"{len(off)} powered off")
    if failed:
        parts.append(f"{len(failed)} failed")
    if no_mem:
        parts.append(f"{len(no_mem)} without memory (largest free {max(c.memory_free for c in no_mem)} MiB)")
    if no_cpu:
        parts.append(f"{len(no_cpu)} without vCPUs (largest free {max(c.vcpus_free for c in no_cpu)})")
    return f"{head}: {', '.join(parts)}"
