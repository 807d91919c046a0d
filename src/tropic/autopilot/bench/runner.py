"""Replay one PlanetLab day, 5-minute steps, for one policy, with the controller in the loop.

Each run opens its own embedded controller (a memory store by default, the sim driver) on a model of the
fleet; every pass builds a :class:`~tropic.autopilot.base.Snapshot` from the committed placement and the
current utilisation, asks the policy for a plan, and runs each move as a ``migrate_vm`` transaction. A
move the transaction layer refuses (e.g. its destination's memory is not free yet) is retried once the
pass's other moves have run; what is still refused is counted and the VM stays. The accounting of energy
and SLA (:mod:`tropic.autopilot.bench.metrics`) follows the placement the controller committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tropic.autopilot.base import HostState, Plan, Policy, Snapshot, VMState
from tropic.autopilot.bench.datacenter import REGION, build_model, host_path, vm_name
from tropic.autopilot.bench.fleet import Fleet, IntArray
from tropic.autopilot.bench.metrics import Accounting
from tropic.autopilot.bench.workload import Trace
from tropic.drivers.sim import SimDriver
from tropic.errors import ConfigError, TropicError
from tropic.model import project
from tropic.records.states import State
from tropic.store.base import MemoryStore, Store
from tropic.store.registry import open_store
from tropic.txn.controller import Controller

BUDGET = 1_000_000  # the bench does not cap migrations per pass: the policies are compared as published
RETRY_ROUNDS = 3


@dataclass
class RunResult:
    policy: str
    accounting: Accounting
    pass_s: list[float] = field(default_factory=list)
    apply_s: float = 0.0
    refused: int = 0
    transactions: int = 0

    def metrics(self) -> dict[str, object]:
        """The day's figures (energy, SLA, migrations, pass times), without the controller's."""
        acc = self.accounting
        p99 = float(np.percentile(self.pass_s, 99)) if self.pass_s else 0.0
        return {
            "energy_kwh": round(acc.energy_kwh, 3),
            "slatah": acc.slatah,
            "slatah_end": acc.slatah_end,
            "pdm": acc.pdm,
            "slav": acc.slav,
            "migrations": acc.migrations,
            "active_host_hours": round(acc.active_host_hours, 2),
            "pass_s_p99": round(p99, 4),
            "pass_s_mean": round(float(np.mean(self.pass_s)), 4) if self.pass_s else 0.0,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            **self.metrics(),
            "apply_s": round(self.apply_s, 2),
            "transactions": self.transactions,
            "refused": self.refused,
        }


class _Loop:
    def __init__(self, fleet: Fleet, placement: IntArray, store: Store) -> None:
        self.fleet = fleet
        self.placement = placement.copy()
        self.paths = [host_path(fleet, h) for h in range(fleet.hosts)]
        self.index = {p: h for h, p in enumerate(self.paths)}
        model = build_model(fleet, placement)
        sim = SimDriver()
        sim.load(project(model))
        self.controller = Controller.open(store, sim, initial=lambda: model, workers=4, watchdog=None)
        if self.controller.model is not model:
            raise ConfigError(f"store {store.uri} already holds a model; the bench needs a fresh store")
        self.controller.start()
        self.host_states = [
            HostState(
                path=p,
                region=REGION,
                cpus=t.cores,
                cpu_overcommit=float(max(fleet.vms, 1)),  # CPU is governed by MIPS: no vCPU slot limit
                memory_mib=t.ram_mb,
                labels={"mips_per_cpu": f"{t.pe_mips:g}", "power_model": t.name},
            )
            for p, t in zip(self.paths, fleet.host_types, strict=True)
        ]
        self.vm_labels = [
            {"mips": f"{m:g}", "ram_mb": f"{r:g}"} for m, r in zip(fleet.vm_mips, fleet.vm_ram, strict=True)
        ]
        self.vm_memory = [int(m) for m in fleet.vm_memory_held]
        self.transactions = 0
        self.refused = 0

    def snapshot(self, util: np.ndarray, at: float) -> Snapshot:
        on: list[list[str]] = [[] for _ in range(self.fleet.hosts)]
        vms: dict[str, VMState] = {}
        for v, h in enumerate(self.placement):
            path = f"{self.paths[int(h)]}/{vm_name(v)}"
            on[int(h)].append(path)
            vms[path] = VMState(
                path=path,
                host=self.paths[int(h)],
                vcpus=1,
                memory_mib=self.vm_memory[v],
                uid=vm_name(v),
                demand=float(util[v]),
                labels=self.vm_labels[v],
            )
        hosts = {
            s.path: HostState(
                s.path,
                s.region,
                s.cpus,
                s.memory_mib,
                s.cpu_overcommit,
                vms=tuple(on[h]),
                labels=s.labels,
                powered=bool(on[h]),  # as in the accounting, a host without VMs is switched off
            )
            for h, s in enumerate(self.host_states)
        }
        return Snapshot(at=at, hosts=hosts, vms=vms)

    def apply(self, plan: Plan) -> list[int]:
        """Run the plan's moves as transactions; returns the VMs that moved (committed)."""
        pending = [(int(m.vm.rsplit("/", 1)[-1].split("-")[1]), self.index[m.dest]) for m in plan.moves]
        moved: list[int] = []
        for _ in range(RETRY_ROUNDS):
            if not pending:
                break
            calls = [
                ("migrate_vm", {"vm": f"{REGION}/{vm_name(v)}", "dest": self.paths[d]}) for v, d in pending
            ]
            txns = self.controller.submit_many(calls, submitter="autopilot-bench")
            self.transactions += len(txns)
            again: list[tuple[int, int]] = []
            for (v, d), t in zip(pending, txns, strict=True):
                done = self.controller.wait(t, timeout=120.0)
                if done.state is State.COMMITTED:
                    self.placement[v] = d
                    moved.append(v)
                else:
                    again.append((v, d))
            if len(again) == len(pending):
                break
            pending = again
        self.refused += len(pending)
        return moved

    def committed_placement(self) -> IntArray:
        """The placement in the controller's model (checked against the bench's own at the end)."""

        def read() -> IntArray:
            out = np.full(self.fleet.vms, -1, dtype=np.int64)
            for path, node in self.controller.model.nodes.items():
                if node.kind == "vm":
                    host, name = path.rsplit("/", 1)
                    out[int(name.split("-")[1])] = self.index[host]
            return out

        return self.controller.call(read)

    def close(self) -> None:
        self.controller.stop()


def run_policy(
    trace: Trace,
    fleet: Fleet,
    placement: IntArray,
    policy: Policy,
    *,
    store: str | None = None,
    time_limit: float = 1.0,
    on_step: Callable[[int], None] | None = None,
) -> RunResult:
    """Replay ``trace`` on ``fleet`` from ``placement`` under ``policy`` (passes from the second interval)."""
    st: Store = MemoryStore() if store is None else open_store(store)
    loop = _Loop(fleet, placement, st)
    acc = Accounting(fleet)
    result = RunResult(policy.name, acc)
    try:
        steps = trace.steps
        for k in range(steps):
            moved: list[int] = []
            if k > 0:
                snap = loop.snapshot(trace.util[:, k], at=k * 300.0)
                start = time.perf_counter()
                plan = policy.plan(snap, budget=BUDGET, time_limit=time_limit)
                result.pass_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                moved = loop.apply(plan) if plan.moves else []
                result.apply_s += time.perf_counter() - start
            if k + 1 < steps:
                acc.interval(loop.placement, trace.util[:, k], trace.util[:, k + 1], moved)
            if on_step is not None:
                on_step(k)
        if not np.array_equal(loop.committed_placement(), loop.placement):
            raise TropicError(f"{policy.name}: the controller's placement differs from the bench's")
    finally:
        loop.close()
        st.close()
    result.refused = loop.refused
    result.transactions = loop.transactions
    return result
