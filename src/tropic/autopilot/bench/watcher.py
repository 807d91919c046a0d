"""OpenStack Watcher's "VM workload consolidation" strategy (``vm_workload_consolidation``), from its
documentation: a first-fit heuristic on measured CPU utilisation, in four phases.

1. **Offload**: hosts by decreasing CPU use; on each overloaded one (use above capacity x cc), its VMs by
   increasing CPU use move, first fit, to the most used host they fit on, until it is not overloaded.
2. **Consolidation**: hosts by increasing CPU use; each host's VMs, most used first, move to the most used
   host (scanning down, never past the source's rank) that can take them within capacity x cc.
3. **Optimise the solution**: a VM moved several times makes one migration to its last host; a VM moved
   back home makes none.
4. **Disable unused nodes**: empty hosts are switched off (here: accounted as off).

CPU use is absolute (MIPS used), fit checks CPU and memory; the capacity coefficient ``cc`` is 1.0 in
both phases, as in Watcher's ``do_execute``.
"""

from __future__ import annotations

import time

import numpy as np

from tropic.autopilot.base import Plan, Snapshot
from tropic.autopilot.bench.arrays import arrays_of


class WatcherConsolidation:
    name = "watcher"

    def __init__(self, cc: float = 1.0) -> None:
        self.cc = cc

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        start = time.perf_counter()
        a = arrays_of(snapshot)
        n = len(a.host_paths)
        d = a.demand_mips
        final = a.host_of.copy()
        cur = np.bincount(final, weights=d, minlength=n)
        ram = np.bincount(final, weights=a.vm_ram, minlength=n)
        on: list[list[int]] = [[] for _ in range(n)]
        for v, h in enumerate(final):
            on[int(h)].append(v)
        cap = a.host_mips * self.cc
        ram_cap = a.host_ram * self.cc

        def fits(v: int, dests: np.ndarray) -> np.ndarray:
            ok: np.ndarray = (
                (~a.host_blocked[dests])
                & (cur[dests] + d[v] <= cap[dests])
                & (ram[dests] + a.vm_ram[v] <= ram_cap[dests])
            )
            return ok

        def move(v: int, dest: int) -> None:
            src = int(final[v])
            cur[src] -= d[v]
            cur[dest] += d[v]
            ram[src] -= a.vm_ram[v]
            ram[dest] += a.vm_ram[v]
            on[src].remove(v)
            on[dest].append(v)
            final[v] = dest

        # 1. Offload phase.
        order = np.argsort(cur, kind="stable")
        down = order[::-1]
        for h in down:
            h = int(h)
            if not cur[h] > cap[h]:
                continue
            for v in sorted((v for v in on[h] if not a.pinned[v]), key=lambda w: d[w]):
                ok = fits(v, down)
                if ok.any():
                    move(v, int(down[int(np.argmax(ok))]))
                if not cur[h] > cap[h]:
                    break
        # 2. Consolidation phase.
        order = np.argsort(cur, kind="stable")
        for asc, h in enumerate(order):
            h = int(h)
            for v in sorted((v for v in on[h] if not a.pinned[v]), key=lambda w: -d[w]):
                above = order[asc + 1 :]
                if not len(above):
                    break
                ok = fits(v, above)
                if ok.any():
                    last = len(above) - 1 - int(np.argmax(ok[::-1]))  # the most used host that fits
                    move(v, int(above[last]))
        # 3. Optimise the solution (one migration per VM, none for a round trip).
        moves = a.moves(final, "watcher")[:budget]
        return Plan(
            self.name, moves=moves, why=f"{len(moves)} migrations", solve_s=time.perf_counter() - start
        )


class NoConsolidation:
    """No migrations: VMs stay where they were placed (CloudSim's DVFS baseline; NPA is the same placement
    with every host at full power all day)."""

    name = "none"

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        return Plan(self.name, why="no consolidation")
