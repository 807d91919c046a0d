"""Beloglazov & Buyya's LR-MMT (CCPE 2012) as CloudSim 3.0.3 runs it in ``power/planetlab``:

* **overload detection, local regression** (``PowerVmAllocationPolicyMigrationLocalRegression``): a
  straight line fitted to the host's last 10 utilisation samples (the sum of its VMs' histories, each
  weighted by its MIPS over the host's) predicts the next one; the host is overloaded when the prediction
  times the safety parameter (1.2) reaches 1. With fewer than 10 samples, the fallback is a static
  threshold: utilisation above 0.7;
* **VM selection, minimum migration time** (``PowerVmSelectionPolicyMinimumMigrationTime``): the VM with
  the least RAM leaves an overloaded host, one by one until it is not overloaded any more;
* **placement, power-aware best fit decreasing** (``PowerVmAllocationPolicyMigrationAbstract``): VMs by
  decreasing CPU demand, each to the host whose power grows least, among the hosts where it fits and which
  would not become overloaded (the regression again, with the VM's history added);
* **underload**: the least-utilised active host is emptied if all its VMs can be placed elsewhere
  (on active hosts only), then the next, until no host is left to try.

CloudSim cancels a failed evacuation by removing *all* VMs from the hosts that took some of them in its
scratch allocation (``vmDestroyAll``); here the evacuation is undone exactly. The policy keeps each VM's
utilisation history (30 samples, as ``PowerVm``) from one pass to the next.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from tropic.autopilot.base import Plan, Snapshot
from tropic.autopilot.bench.arrays import Arrays, arrays_of
from tropic.autopilot.bench.fleet import FloatArray, power

HISTORY = 30
REGRESSION_POINTS = 10
FALLBACK_THRESHOLD = 0.7
# Ordinary least squares on x = 1..10 predicts x = 11 as a fixed linear combination of the 10 samples;
# column j of the history is the sample j intervals ago (x = 10 - j).
_X = 10.0 - np.arange(REGRESSION_POINTS)
LR_WEIGHTS: FloatArray = 1.0 / REGRESSION_POINTS + (_X - _X.mean()) * (11.0 - _X.mean()) / (
    ((_X - _X.mean()) ** 2).sum()
)


class LrMmt:
    """LR-MMT with safety parameter ``safety`` (CloudSim's examples: 1.2)."""

    name = "lr-mmt"

    def __init__(self, safety: float = 1.2) -> None:
        self.safety = safety
        self._history: dict[str, deque[float]] = {}

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        start = time.perf_counter()
        a = arrays_of(snapshot)
        hist = self._remember(snapshot, a)
        final = _Pass(a, hist, self.safety).run()
        moves = a.moves(final, "lr-mmt")[:budget]
        return Plan(
            self.name, moves=moves, why=f"{len(moves)} migrations", solve_s=time.perf_counter() - start
        )

    def _remember(self, snapshot: Snapshot, a: Arrays) -> FloatArray:
        """Each VM's utilisation history, newest first, padded with zeros (CloudSim trims zero tails)."""
        out = np.zeros((len(a.vm_paths), HISTORY))
        for i, p in enumerate(a.vm_paths):
            key = snapshot.vms[p].uid or snapshot.vms[p].path.rsplit("/", 1)[-1]
            h = self._history.setdefault(key, deque(maxlen=HISTORY))
            h.appendleft(float(a.vm_util[i]))
            out[i, : len(h)] = list(h)
        return out


class _Pass:
    """One optimisation pass on a scratch copy of the placement."""

    def __init__(self, a: Arrays, hist: FloatArray, safety: float) -> None:
        self.a = a
        self.safety = safety
        n = len(a.host_paths)
        self.d = a.demand_mips
        self.pred_v = (hist[:, :REGRESSION_POINTS] @ LR_WEIGHTS) * a.vm_mips
        # A host's history has 10 samples once any of its VMs has a non-zero sample 10 intervals ago or more.
        self.long_v = (hist[:, REGRESSION_POINTS - 1 :] != 0).any(axis=1).astype(np.float64)
        self.final = a.host_of.copy()
        self.cur = np.bincount(self.final, weights=self.d, minlength=n)
        self.pred = np.bincount(self.final, weights=self.pred_v, minlength=n)
        self.ram = np.bincount(self.final, weights=a.vm_ram, minlength=n)
        self.long = np.bincount(self.final, weights=self.long_v, minlength=n)
        self.u0 = np.minimum(
            self.cur / a.host_mips, 1.0
        )  # CloudSim's host.getUtilizationOfCpu(): not updated
        self.on: list[list[int]] = [[] for _ in range(n)]
        for v, h in enumerate(self.final):
            self.on[int(h)].append(v)

    def _move(self, v: int, dest: int) -> None:
        src = int(self.final[v])
        for arr, val in ((self.cur, self.d[v]), (self.pred, self.pred_v[v]), (self.ram, self.a.vm_ram[v])):
            arr[src] -= val
            arr[dest] += val
        self.long[src] -= self.long_v[v]
        self.long[dest] += self.long_v[v]
        self.on[src].remove(v)
        self.on[dest].append(v)
        self.final[v] = dest

    def overloaded(self, h: int) -> bool:
        mips = self.a.host_mips[h]
        if self.long[h] > 0:
            return bool(self.pred[h] / mips * self.safety >= 1.0)
        return bool(self.cur[h] / mips > FALLBACK_THRESHOLD)

    def find_host(self, v: int, excluded: np.ndarray) -> int | None:
        a = self.a
        need = self.d[v]
        after = (self.cur + need) / a.host_mips
        ok = ~excluded & ~a.host_blocked & (a.host_pe_mips >= need) & (after <= 1.0)
        ok &= self.ram + a.vm_ram[v] <= a.host_ram
        lr = (self.pred + self.pred_v[v]) / a.host_mips * self.safety >= 1.0
        thr = after > FALLBACK_THRESHOLD
        over_after = np.where((self.long > 0) | (self.long_v[v] > 0), lr, thr)
        ok &= ~((self.cur != 0) & over_after)
        if not ok.any():
            return None
        diff = power(a.power_table, after) - power(a.power_table, self.cur / a.host_mips)
        diff[~ok] = np.inf
        return int(np.argmin(diff))

    def _place(self, vms: list[int], excluded: np.ndarray, *, all_or_nothing: bool) -> list[int] | None:
        """Best fit decreasing; returns the hosts that took VMs, or None when all-or-nothing failed."""
        order = sorted(vms, key=lambda v: -self.d[v])
        taken: list[tuple[int, int]] = []
        for v in order:
            dest = self.find_host(v, excluded)
            if dest is None:
                if all_or_nothing:
                    for w, src in reversed(taken):
                        self._move(w, src)
                    return None
                continue
            taken.append((v, int(self.final[v])))
            self._move(v, dest)
        return [int(self.final[v]) for v, _ in taken]

    def run(self) -> np.ndarray:
        a = self.a
        n = len(a.host_paths)
        over = np.zeros(n, dtype=bool)
        for h in range(n):
            over[h] = self.overloaded(h)
        # Overloaded hosts: MMT selection until the host is not overloaded.
        leaving: list[tuple[int, int]] = []
        for h in (int(x) for x in np.nonzero(over)[0]):
            gone: set[int] = set()
            while True:
                movable = [v for v in self.on[h] if not a.pinned[v] and v not in gone]
                if not movable:
                    break
                v = min(movable, key=lambda w: a.vm_migration_ram[w])
                leaving.append((v, h))
                gone.add(v)
                self._detach(v)
                if not self.overloaded(h):
                    break
        for v, h in leaving:
            self._attach(v, h)  # the VM stays where it is unless a placement below takes it
        self._place([v for v, _ in leaving], over.copy(), all_or_nothing=False)
        # Underloaded hosts: empty the least-utilised active host, all or nothing.
        off = self.u0 == 0
        exclude_find = over | off | a.host_blocked
        exclude_place = over | off
        while True:
            candidates = ~exclude_find & (self.u0 > 0) & (self.u0 < 1.0)
            if not candidates.any():
                break
            h = int(np.argmin(np.where(candidates, self.u0, np.inf)))
            exclude_find[h] = True
            exclude_place[h] = True
            vms = [v for v in self.on[h] if not a.pinned[v]]
            if not vms or len(vms) < len(self.on[h]):
                continue
            dests = self._place(vms, exclude_place, all_or_nothing=True)
            if dests:
                exclude_find[dests] = True
        return self.final

    # A VM leaving an overloaded host is taken off it for the detection of the next one (CloudSim's
    # vmDestroy on its scratch allocation), then put back until a placement moves it.
    def _detach(self, v: int) -> None:
        h = int(self.final[v])
        self.cur[h] -= self.d[v]
        self.pred[h] -= self.pred_v[v]
        self.ram[h] -= self.a.vm_ram[v]
        self.long[h] -= self.long_v[v]

    def _attach(self, v: int, h: int) -> None:
        self.cur[h] += self.d[v]
        self.pred[h] += self.pred_v[v]
        self.ram[h] += self.a.vm_ram[v]
        self.long[h] += self.long_v[v]
