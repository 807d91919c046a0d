"""Incremental bookkeeping of a (partial) placement: free capacity and constraint counts per host.

Heuristics ask it which hosts can take a VM (one vectorised mask over all hosts), and the large-neighbourhood
search uses it to know the residual capacities and counts around the VMs it frees. It implements the same
semantics as :func:`tropic.optimize.placement.check_placement`, incrementally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from tropic.errors import InvalidArguments
from tropic.optimize.placement import Level, PlacementProblem, RegionLimit

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_NO_LIMIT = np.iinfo(np.int64).max


class PlacementState:
    """Which host each VM is on, with free capacity and per-constraint counts kept up to date.

    VMs and hosts are addressed by their index in ``problem.vms`` / ``problem.hosts``; ``-1`` means "not
    placed". :meth:`place` does not check feasibility; callers check with :meth:`feasible_hosts` or
    :meth:`can_place` first (so an infeasible current configuration can still be loaded).
    """

    def __init__(self, problem: PlacementProblem, assignment: Mapping[str, str] | None = None) -> None:
        self.problem = problem
        hosts, vms = problem.hosts, problem.vms
        self.host_index = {h.path: i for i, h in enumerate(hosts)}
        self.vm_index = {v.name: i for i, v in enumerate(vms)}
        self.cap_cpu: IntArray = np.array([h.vcpus for h in hosts], dtype=np.int64)
        self.cap_mem: IntArray = np.array([h.memory_mib for h in hosts], dtype=np.int64)
        self.cpu_free: IntArray = self.cap_cpu.copy()
        self.mem_free: IntArray = self.cap_mem.copy()
        self.vm_count: IntArray = np.zeros(len(hosts), dtype=np.int64)
        self.vm_cpu = [v.vcpus for v in vms]
        self.vm_mem = [v.memory_mib for v in vms]
        self.assign: list[int] = [-1] * len(vms)
        self.on_host: list[set[int]] = [set() for _ in hosts]

        # Domains of each level: host -> domain id.
        self.domain_of: dict[Level, IntArray] = {}
        self.domain_names: dict[Level, list[str]] = {}
        for level in Level:
            names: dict[str, int] = {}
            ids = [names.setdefault(level.domain_of(h), len(names)) for h in hosts]
            self.domain_of[level] = np.array(ids, dtype=np.int64)
            self.domain_names[level] = list(names)

        # Group constraints (anti-affinity, spread): counts per domain of their level.
        self.group_level: list[Level] = []
        self.group_cap: list[int] = []
        self.group_count: list[IntArray] = []
        self.group_members: list[list[int]] = []
        self.vm_groups: list[list[int]] = [[] for _ in vms]
        # Region limits: per region id.
        region_ids = self.domain_of[Level.REGION]
        regions = self.domain_names[Level.REGION]
        self.region_max_vms: IntArray = np.full(len(regions), _NO_LIMIT, dtype=np.int64)
        self.region_max_hosts: IntArray = np.full(len(regions), _NO_LIMIT, dtype=np.int64)
        for c in problem.constraints:
            if isinstance(c, RegionLimit):
                if c.region not in regions:
                    continue  # no host there: nothing can be placed in it anyway
                r = regions.index(c.region)
                if c.max_vms is not None:
                    self.region_max_vms[r] = min(int(self.region_max_vms[r]), c.max_vms)
                if c.max_hosts is not None:
                    self.region_max_hosts[r] = min(int(self.region_max_hosts[r]), c.max_hosts)
                continue
            gid = len(self.group_cap)
            members = [self.vm_index[n] for n in dict.fromkeys(c.vms)]
            self.group_level.append(c.level)
            self.group_cap.append(c.cap)
            self.group_count.append(np.zeros(len(self.domain_names[c.level]), dtype=np.int64))
            self.group_members.append(members)
            for m in members:
                self.vm_groups[m].append(gid)
        self.region_of_host = region_ids
        self.region_vms: IntArray = np.zeros(len(regions), dtype=np.int64)
        self.region_hosts: IntArray = np.zeros(len(regions), dtype=np.int64)

        for name, path in (assignment or {}).items():
            if name not in self.vm_index:
                raise InvalidArguments(f"unknown VM {name!r}", path=name)
            if path not in self.host_index:
                raise InvalidArguments(f"VM {name}: unknown host {path}", path=name)
            self.place(self.vm_index[name], self.host_index[path])

    # --- queries --------------------------------------------------------------------------------------------
    def feasible_hosts(self, vm: int) -> BoolArray:
        """Mask of the hosts that can take ``vm`` now without breaking any constraint."""
        mask: BoolArray = (self.cpu_free >= self.vm_cpu[vm]) & (self.mem_free >= self.vm_mem[vm])
        for g in self.vm_groups[vm]:
            mask &= self.group_count[g][self.domain_of[self.group_level[g]]] < self.group_cap[g]
        r = self.region_of_host
        mask &= self.region_vms[r] < self.region_max_vms[r]
        mask &= (self.vm_count > 0) | (self.region_hosts[r] < self.region_max_hosts[r])
        return mask

    def can_place(self, vm: int, host: int) -> bool:
        if self.cpu_free[host] < self.vm_cpu[vm] or self.mem_free[host] < self.vm_mem[vm]:
            return False
        for g in self.vm_groups[vm]:
            if self.group_count[g][self.domain_of[self.group_level[g]][host]] >= self.group_cap[g]:
                return False
        r = self.region_of_host[host]
        if self.region_vms[r] >= self.region_max_vms[r]:
            return False
        return not (self.vm_count[host] == 0 and self.region_hosts[r] >= self.region_max_hosts[r])

    def consistent(self) -> bool:
        """Whether the VMs placed so far break no constraint (a loaded current configuration may)."""
        return bool(
            (self.cpu_free >= 0).all()
            and (self.mem_free >= 0).all()
            and all((count <= cap).all() for count, cap in zip(self.group_count, self.group_cap, strict=True))
            and (self.region_vms <= self.region_max_vms).all()
            and (self.region_hosts <= self.region_max_hosts).all()
        )

    def hosts_used(self) -> int:
        return int(np.count_nonzero(self.vm_count))

    def assignment(self) -> dict[str, str]:
        vms, hosts = self.problem.vms, self.problem.hosts
        return {vms[v].name: hosts[h].path for v, h in enumerate(self.assign) if h >= 0}

    def migrations(self) -> int:
        hosts = self.problem.hosts
        return sum(
            1
            for v, h in zip(self.problem.vms, self.assign, strict=True)
            if v.host is not None and (h < 0 or hosts[h].path != v.host)
        )

    # --- updates --------------------------------------------------------------------------------------------
    def place(self, vm: int, host: int) -> None:
        if self.assign[vm] >= 0:
            raise InvalidArguments(f"VM {self.problem.vms[vm].name} is already placed")
        self.assign[vm] = host
        self.on_host[host].add(vm)
        self._account(vm, host, +1)

    def remove(self, vm: int) -> int:
        """Unplace ``vm``; returns the host it was on."""
        host = self.assign[vm]
        if host < 0:
            raise InvalidArguments(f"VM {self.problem.vms[vm].name} is not placed")
        self.assign[vm] = -1
        self.on_host[host].discard(vm)
        self._account(vm, host, -1)
        return host

    def remove_all(self, vms: Sequence[int]) -> list[int]:
        return [self.remove(v) for v in vms]

    def _account(self, vm: int, host: int, sign: int) -> None:
        self.cpu_free[host] -= sign * self.vm_cpu[vm]
        self.mem_free[host] -= sign * self.vm_mem[vm]
        r = self.region_of_host[host]
        if sign > 0 and self.vm_count[host] == 0:
            self.region_hosts[r] += 1
        self.vm_count[host] += sign
        if sign < 0 and self.vm_count[host] == 0:
            self.region_hosts[r] -= 1
        self.region_vms[r] += sign
        for g in self.vm_groups[vm]:
            self.group_count[g][self.domain_of[self.group_level[g]][host]] += sign
