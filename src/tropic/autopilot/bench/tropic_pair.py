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

from dataclasses import replace

from tropic.autopilot.base import Plan, Policy, Snapshot

MIPS_PER_CPU = 100.0


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


class TropicAutopilot:
    """Hot-spot relief then consolidation, as one :class:`~tropic.autopilot.base.Policy`."""

    name = "tropic"

    def __init__(self, relief: Policy, consolidation: Policy) -> None:
        self.relief = relief
        self.consolidation = consolidation

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        snapshot = in_mips(snapshot)
        awake = {p: replace(h, powered=True) for p, h in snapshot.hosts.items()}
        first = self.relief.plan(replace(snapshot, hosts=awake), budget=budget, time_limit=time_limit)
        rest = _after(snapshot, first) if first.moves else snapshot
        second = self.consolidation.plan(
            rest, budget=max(0, budget - len(first.moves)), time_limit=time_limit
        )
        moved = {m.vm for m in first.moves}
        if any(m.vm in moved for m in second.moves):  # a VM moved twice: keep the relief only
            return first
        return Plan(
            policy=self.name,
            moves=first.moves + second.moves,
            gain=first.gain + second.gain,
            cost=first.cost + second.cost,
            why=f"{first.why}; {second.why}" if first.moves else second.why,
            solve_s=first.solve_s + second.solve_s,
        )
