"""tropic's autopilot as the bench runs it: hot-spot relief, then CP-SAT consolidation on what is left.

The coordinator runs both policies every pass; consolidation alone never sheds load from a host that is
over its headroom, so the bench pairs them the same way. Hot-spot relief may wake a switched-off host when
no powered one has room (the bench's empty hosts are off); consolidation then plans on the snapshot with
the relief's moves already made, and the plan is both, relief first.

Both policies count cores, the bench's hosts and VMs MIPS (hosts of two speeds, VMs of four ratings,
labels ``mips_per_cpu`` and ``mips``): the pair sees CPU in units of :data:`MIPS_PER_CPU`, a host with its
total MIPS / MIPS_PER_CPU cpus and a VM with demand utilisation x its MIPS / MIPS_PER_CPU.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from tropic.autopilot.base import Plan, Policy, Snapshot
from tropic.autopilot.predict import moving_percentile

MIPS_PER_CPU = 100.0
WINDOW = 12  # readings a percentile looks back over (an hour of 5-minute passes, as the service's)


def in_mips(snap: Snapshot) -> Snapshot:
    """``snap`` with CPU in units of :data:`MIPS_PER_CPU` (see the module docstring)."""
    hosts = {
        p: replace(
            h,
            cpus=int(h.cpus * float(h.labels.get("mips_per_cpu", MIPS_PER_CPU)) // MIPS_PER_CPU),
            cpu_overcommit=float(max(len(snap.vms), 1)),
        )
        for p, h in snap.hosts.items()
    }
    vms = {
        p: replace(
            v,
            demand=None
            if v.demand is None
            else v.demand * float(v.labels.get("mips", MIPS_PER_CPU)) / MIPS_PER_CPU,
        )
        for p, v in snap.vms.items()
    }
    return replace(snap, hosts=hosts, vms=vms)


def _after(snap: Snapshot, plan: Plan) -> Snapshot:
    """``snap`` with ``plan``'s moves made (and their destinations powered)."""
    hosts = dict(snap.hosts)
    vms = dict(snap.vms)
    for m in plan.moves:
        vm = vms[m.vm]
        src, dst = hosts[vm.host], hosts[m.dest]
        hosts[src.path] = replace(src, vms=tuple(p for p in src.vms if p != m.vm))
        hosts[dst.path] = replace(dst, vms=(*dst.vms, m.vm), powered=True)
        vms[m.vm] = replace(vm, host=m.dest)
    return replace(snap, hosts=hosts, vms=vms)


def _merge(first: Plan, second: Plan) -> Plan:
    """``first`` then ``second`` as one plan. A VM that both move makes one migration, from its host now
    to ``second``'s destination, in ``second``'s order (``second`` was planned with ``first``'s moves made,
    so its target placement is valid; only the intermediate host is skipped)."""
    again = {m.vm for m in second.moves}
    moves = tuple(m for m in first.moves if m.vm not in again) + second.moves
    merged = len(first.moves) + len(second.moves) - len(moves)
    why = f"{first.why}; {second.why}" if first.moves else second.why
    if merged:
        why += f" ({merged} VM(s) moved by both: one migration each)"
    woken = {m.dest for m in first.moves if m.vm not in again}
    return Plan(
        policy=first.policy,
        moves=moves,
        power_off=tuple(p for p in second.power_off if p not in woken),
        power_on=tuple(dict.fromkeys((*first.power_on, *second.power_on))),
        gain=first.gain + second.gain,
        cost=first.cost + second.cost,
        why=why,
        solve_s=first.solve_s + second.solve_s,
    )


class TropicAutopilot:
    """Hot-spot relief then consolidation, as one :class:`~tropic.autopilot.base.Policy`.

    Relief first places the load it sheds on the powered hosts; only the hosts it could not relieve
    that way get a second relief round that may wake switched-off hosts (waking a host for each shed VM
    would undo the consolidation every pass). Consolidation then plans on the snapshot with the relief's
    moves made; a VM both move migrates once (:func:`_merge`)."""

    name = "tropic"

    def __init__(self, relief: Policy, consolidation: Policy, *, percentile: float | None = None) -> None:
        self.relief = relief
        self.consolidation = consolidation
        self.percentile = percentile
        self._seen: dict[str, deque[float]] = {}

    def predicted(self, snapshot: Snapshot) -> Snapshot:
        """With a ``percentile``: each VM's demand is the larger of its reading now and that percentile of
        the last :data:`WINDOW` readings this policy was given (now included; never a later one)."""
        if self.percentile is None:
            return snapshot
        vms = {}
        for path, vm in snapshot.vms.items():
            key = vm.uid or path
            seen = self._seen.setdefault(key, deque(maxlen=WINDOW))
            if vm.demand is not None:
                seen.append(vm.demand)
            demand = vm.demand
            if demand is not None:
                demand = max(demand, moving_percentile(list(seen), self.percentile))
            vms[path] = replace(vm, demand=demand)
        for key in set(self._seen) - {vm.uid or path for path, vm in snapshot.vms.items()}:
            del self._seen[key]  # a VM gone from the fleet
        return replace(snapshot, vms=vms)

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        snapshot = in_mips(self.predicted(snapshot))
        first = self.relief.plan(snapshot, budget=budget, time_limit=time_limit)
        rest = _after(snapshot, first) if first.moves else snapshot
        left = max(0, budget - len(first.moves))
        awake = {p: replace(h, powered=True) for p, h in rest.hosts.items()}
        woke = self.relief.plan(replace(rest, hosts=awake), budget=left, time_limit=time_limit)
        if woke.moves:
            first = _merge(first, replace(woke, power_on=tuple(dict.fromkeys(m.dest for m in woke.moves))))
            rest = _after(rest, woke)
            left = max(0, budget - len(first.moves))
        second = self.consolidation.plan(rest, budget=left, time_limit=time_limit)
        return replace(_merge(first, second), policy=self.name)
