"""The consolidation problem as arrays, and a working placement kept up to date incrementally.

A :class:`Fleet` is built once per pass from a :class:`~tropic.autopilot.base.Snapshot` and a
:class:`ConsolidationConfig`: integer capacities (predicted demand in milli-cores within the headroom,
memory in MiB, vCPUs within the overcommit), which VMs may move (known demand, not stale, on a host that is
not stale; within its region) and which hosts may receive (not cordoned, not stale, load known and within
every limit). A
:class:`Working` placement starts at the current one; the greedy start, the CP-SAT neighbourhoods and the
baselines all change it through :meth:`Working.place`/:meth:`Working.remove`, so they share one meaning of
every rule, which :meth:`Working.violations` states from scratch for the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tropic.autopilot.base import PolicyError, Snapshot

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ANTI_AFFINITY_LABEL = "anti_affinity"  # VMs sharing this label's value stay in distinct failure domains
SCALE = 10_000  # integer units per host-power unit in the objective


@dataclass(frozen=True)
class ConsolidationConfig:
    """Tuning of the consolidation policy; every cost is in **host-power units** (1.0 = one host kept on
    over the planning horizon).

    - ``headroom``: a host's predicted CPU demand must stay <= ``headroom x cpus`` (0 < headroom <= 1);
    - ``host_power``: utility of one host switched off;
    - ``boot_cost``: extra cost of powering a host on (on top of its ``host_power`` while it runs);
    - a migration of a VM with ``m`` MiB costs ``migration_overhead + migration_weight x host_power x
      (m / bandwidth_mib_s) / horizon_s``: its duration, as a share of the horizon, weighted for the
      degradation it causes;
    - ``full_model_max_pairs``: up to this many (movable VM, host) pairs, one CP-SAT model for the whole
      fleet (it can prove optimality); beyond, a large-neighbourhood search.
    """

    headroom: float = 0.8
    host_power: float = 1.0
    boot_cost: float = 0.1
    bandwidth_mib_s: float = 125.0  # 1 Gbit/s, as in CloudSim's experiments
    horizon_s: float = 3600.0
    migration_weight: float = 2.0
    migration_overhead: float = 0.01
    full_model_max_pairs: int = 2_500
    seed: int = 0
    workers: int = 2

    def check(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"consolidation: {name} must be a number, got {value!r}")
        if not (0.0 < self.headroom <= 1.0) or math.isnan(self.headroom):
            raise PolicyError(
                f"consolidation: impossible headroom {self.headroom!r}: it must be in (0, 1] "
                "(the share of a host's CPUs predicted demand may use)"
            )
        for name in ("host_power", "bandwidth_mib_s", "horizon_s"):
            value = getattr(self, name)
            if not value > 0:
                raise PolicyError(f"consolidation: {name} must be positive, got {value!r}")
        for name in ("boot_cost", "migration_weight", "migration_overhead"):
            value = getattr(self, name)
            if not value >= 0:
                raise PolicyError(f"consolidation: {name} must not be negative, got {value!r}")

    def migration_cost(self, memory_mib: int) -> float:
        seconds = memory_mib / self.bandwidth_mib_s
        return self.migration_overhead + self.migration_weight * self.host_power * seconds / self.horizon_s


class Fleet:
    """The static part of one consolidation problem (see the module docstring)."""

    def __init__(self, snapshot: Snapshot, config: ConsolidationConfig) -> None:
        config.check()
        self.config = config
        stale = snapshot.stale
        self.host_paths = sorted(snapshot.hosts)
        self.host_index = {p: i for i, p in enumerate(self.host_paths)}
        hosts = [snapshot.hosts[p] for p in self.host_paths]
        self.vm_paths = sorted(snapshot.vms)
        vms = [snapshot.vms[p] for p in self.vm_paths]
        n_h, n_v = len(hosts), len(vms)

        self.cap_d: IntArray = np.array(
            [math.floor(config.headroom * h.cpus * 1000) for h in hosts], np.int64
        )
        self.cap_m: IntArray = np.array([h.memory_mib for h in hosts], np.int64)
        self.cap_v: IntArray = np.array([math.floor(h.cpus * h.cpu_overcommit) for h in hosts], np.int64)
        self.powered: BoolArray = np.array([h.powered for h in hosts], np.bool_)
        self.stale_host: BoolArray = np.array([h.path in stale for h in hosts], np.bool_)
        self.cordoned: BoolArray = np.array([h.cordoned for h in hosts], np.bool_)
        regions: dict[str, int] = {}
        self.region: IntArray = np.array(
            [regions.setdefault(h.region, len(regions)) for h in hosts], np.int64
        )
        domains: dict[str, int] = {}
        self.domain: IntArray = np.array(
            [domains.setdefault(h.failure_domain or h.path, len(domains)) for h in hosts], np.int64
        )
        self.n_domains = len(domains)

        self.origin: list[int] = []
        self.d: list[int] = []
        self.m: list[int] = []
        self.c: list[int] = []
        self.movable: list[bool] = []
        self.cost: list[int] = []
        self.cost_f: list[float] = []
        unknown_load = np.zeros(n_h, np.bool_)
        total_demand = 0.0
        for vm in vms:
            if vm.host not in self.host_index:
                raise PolicyError(f"consolidation: VM {vm.path} is on unknown host {vm.host}", path=vm.path)
            h = self.host_index[vm.host]
            known = vm.demand is not None and vm.demand >= 0 and math.isfinite(vm.demand)
            demand = float(vm.demand) if known and vm.demand is not None else 0.0
            total_demand += demand
            self.origin.append(h)
            self.d.append(math.ceil(demand * 1000))
            self.m.append(vm.memory_mib)
            self.c.append(vm.vcpus)
            movable = known and vm.path not in stale and not self.stale_host[h] and bool(self.powered[h])
            self.movable.append(movable)
            if not known or vm.path in stale:
                unknown_load[h] = True
            cost = config.migration_cost(vm.memory_mib)
            self.cost_f.append(cost)
            self.cost.append(max(1, round(cost * SCALE)))
        self.host_unit = max(1, round(config.host_power * SCALE))
        self.boot_unit = round((config.host_power + config.boot_cost) * SCALE)

        cpus = sum(h.cpus for h in hosts)
        capacity = config.headroom * cpus
        if total_demand > capacity + 1e-9:
            raise PolicyError(
                f"consolidation: the fleet's predicted demand ({total_demand:.1f} cores) cannot fit within"
                f" headroom {config.headroom:g} of its {cpus} CPUs ({capacity:.1f} cores)"
            )
        memory = sum(vm.memory_mib for vm in vms)
        if memory > int(self.cap_m.sum()):
            raise PolicyError(
                f"consolidation: the fleet's VMs need {memory} MiB, more than its hosts' "
                f"{int(self.cap_m.sum())}"
            )

        # Anti-affinity groups with at least two members; allowance per failure domain: max(1, now).
        labels: dict[str, list[int]] = {}
        for i, vm in enumerate(vms):
            value = vm.labels.get(ANTI_AFFINITY_LABEL)
            if value:
                labels.setdefault(value, []).append(i)
        self.group_of: list[int] = [-1] * n_v
        self.group_names: list[str] = []
        self.group_allow: list[IntArray] = []
        for name, members in sorted(labels.items()):
            if len(members) < 2:
                continue
            g = len(self.group_names)
            self.group_names.append(name)
            count = np.zeros(self.n_domains, np.int64)
            for i in members:
                self.group_of[i] = g
                count[self.domain[self.origin[i]]] += 1
            self.group_allow.append(np.maximum(count, 1))

        # Receivers: known load within every limit now, not cordoned, not stale.
        load = Working(self)
        within = (load.load_d <= self.cap_d) & (load.load_m <= self.cap_m) & (load.load_v <= self.cap_v)
        self.receivable: BoolArray = within & ~self.cordoned & ~self.stale_host & ~unknown_load
        # Sources: a host may be emptied (and switched off) only when every VM on it may move.
        self.pinned_count: IntArray = np.zeros(n_h, np.int64)
        for i, h in enumerate(self.origin):
            if not self.movable[i]:
                self.pinned_count[h] += 1

    @property
    def n_hosts(self) -> int:
        return len(self.host_paths)

    def allowed(self, v: int, h: int) -> bool:
        """Whether VM ``v`` may be on host ``h`` at all (its own host, or a receiver)."""
        return h == self.origin[v] or bool(self.receivable[h])


class Working:
    """A complete placement of a :class:`Fleet`'s VMs with per-host loads and per-group counts."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        n_h = fleet.n_hosts
        self.assign: list[int] = list(fleet.origin)
        self.load_d: IntArray = np.zeros(n_h, np.int64)
        self.load_m: IntArray = np.zeros(n_h, np.int64)
        self.load_v: IntArray = np.zeros(n_h, np.int64)
        self.count: IntArray = np.zeros(n_h, np.int64)
        self.on_host: list[set[int]] = [set() for _ in range(n_h)]
        self.group_count: list[IntArray] = [np.zeros(fleet.n_domains, np.int64) for _ in fleet.group_allow]
        self.moved = 0
        for v, h in enumerate(self.assign):
            self._account(v, h, +1)

    def copy(self) -> Working:
        out = Working.__new__(Working)
        out.fleet = self.fleet
        out.assign = list(self.assign)
        out.load_d, out.load_m, out.load_v = self.load_d.copy(), self.load_m.copy(), self.load_v.copy()
        out.count = self.count.copy()
        out.on_host = [set(s) for s in self.on_host]
        out.group_count = [g.copy() for g in self.group_count]
        out.moved = self.moved
        return out

    def _account(self, v: int, h: int, sign: int) -> None:
        f = self.fleet
        self.load_d[h] += sign * f.d[v]
        self.load_m[h] += sign * f.m[v]
        self.load_v[h] += sign * f.c[v]
        self.count[h] += sign
        if sign > 0:
            self.on_host[h].add(v)
        else:
            self.on_host[h].discard(v)
        g = f.group_of[v]
        if g >= 0:
            self.group_count[g][f.domain[h]] += sign

    def remove(self, v: int) -> int:
        h = self.assign[v]
        self._account(v, h, -1)
        if h != self.fleet.origin[v]:
            self.moved -= 1
        self.assign[v] = -1
        return h

    def place(self, v: int, h: int) -> None:
        self.assign[v] = h
        self._account(v, h, +1)
        if h != self.fleet.origin[v]:
            self.moved += 1

    def fits(self, v: int) -> BoolArray:
        """Mask of the receivers ``v`` (unplaced) fits on now, every rule included."""
        f = self.fleet
        mask: BoolArray = (
            f.receivable
            & (f.region == f.region[f.origin[v]])  # a VM stays in its region
            & (self.load_d + f.d[v] <= f.cap_d)
            & (self.load_m + f.m[v] <= f.cap_m)
            & (self.load_v + f.c[v] <= f.cap_v)
        )
        g = f.group_of[v]
        if g >= 0:
            mask &= (self.group_count[g] < f.group_allow[g])[f.domain]
        return mask

    def on(self) -> BoolArray:
        """Hosts powered after this placement: those with VMs, and stale hosts that were powered."""
        f = self.fleet
        out: BoolArray = (self.count > 0) | (f.powered & f.stale_host)
        return out

    def value(self) -> int:
        """The objective (lower is better), in :data:`SCALE` units: hosts on (switched-on ones with the
        boot cost) plus the migration cost of every VM off its original host."""
        f = self.fleet
        on = self.on()
        hosts = int(np.count_nonzero(on & f.powered)) * f.host_unit
        hosts += int(np.count_nonzero(on & ~f.powered)) * f.boot_unit
        moves = sum(f.cost[v] for v, h in enumerate(self.assign) if h != f.origin[v])
        return hosts + moves

    def violations(self, budget: int) -> list[str]:
        """Every rule this placement breaks (from scratch): the reference the tests check plans against."""
        f = self.fleet
        out: list[str] = []
        d = np.zeros(f.n_hosts, np.int64)
        m = np.zeros(f.n_hosts, np.int64)
        c = np.zeros(f.n_hosts, np.int64)
        moved_in = np.zeros(f.n_hosts, np.bool_)
        groups: dict[tuple[int, int], int] = {}
        for v, h in enumerate(self.assign):
            d[h] += f.d[v]
            m[h] += f.m[v]
            c[h] += f.c[v]
            if h != f.origin[v]:
                moved_in[h] = True
                if not f.movable[v]:
                    out.append(f"VM {f.vm_paths[v]} may not move (stale or unknown demand)")
                if not f.receivable[h]:
                    out.append(f"VM {f.vm_paths[v]} moved onto {f.host_paths[h]}, which may not receive")
                if f.region[h] != f.region[f.origin[v]]:
                    out.append(f"VM {f.vm_paths[v]} moved out of its region to {f.host_paths[h]}")
            g = f.group_of[v]
            if g >= 0:
                key = (g, int(f.domain[h]))
                groups[key] = groups.get(key, 0) + 1
        for h in (int(i) for i in np.flatnonzero(moved_in)):
            path = f.host_paths[h]
            if d[h] > f.cap_d[h]:
                out.append(
                    f"host {path}: demand {d[h] / 1000:.3f} cores over headroom {f.cap_d[h] / 1000:.3f}"
                )
            if m[h] > f.cap_m[h]:
                out.append(f"host {path}: {m[h]} MiB over {f.cap_m[h]}")
            if c[h] > f.cap_v[h]:
                out.append(f"host {path}: {c[h]} vCPUs over {f.cap_v[h]}")
        for (g, dom), n in groups.items():
            if n > f.group_allow[g][dom]:
                out.append(f"anti-affinity {f.group_names[g]}: {n} VMs in one failure domain")
        moves = sum(1 for v, h in enumerate(self.assign) if h != f.origin[v])
        if moves > budget:
            out.append(f"{moves} migrations over the budget of {budget}")
        return out
