"""The scheduler under a backlog: N migrations queued at once, half of them conflicting (moving VMs among a
few shared hosts: deferrals, and simulations that fail on a host an older deferred migration will change),
half independent (each on its own pair of hosts). The logical thread's own cost to admit and drain them,
for the scheduler and for the plain reference (:class:`tropic.txn.reference.ReferenceScheduler`, the
admission decision computed by scanning and rebuilding at every look) on the same workload, with a check
that both made the same decisions. Workers are idle stand-ins finished by hand (the oldest ``--finish``
after each pass), so only the scheduler is measured.

    python benchmarks/scheduler_backlog.py [--sizes 500,2000,5000] [--hot 16] [--finish 8] [--profile]

Prints JSON; ``--profile`` also prints each run's top functions (cProfile) on stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import sys
import time
from typing import Any

from tropic.model import STANDARD, VM, ComputeRoot, Host, Model, Region
from tropic.txn.reference import ReferenceScheduler, SchedulerRig
from tropic.txn.scheduler import Scheduler

REGION = "b"
VMS_PER_HOT_HOST = 8
VM_MIB = 1024
HOT_HOST_MIB = 16 * VM_MIB  # room for twice its VMs: some migrations in are refused by the constraint


def workload(n: int, hot: int, seed: int) -> tuple[Model, list[tuple[str, dict[str, Any]]]]:
    """The model and the ``n`` migrations (even: conflicting, among ``hot`` hosts; odd: independent)."""
    rng = random.Random(seed)
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add(f"/compute/{REGION}", Region, location=REGION)

    def add_host(name: str, memory: int, vms: list[str]) -> str:
        path = f"/compute/{REGION}/{name}"
        m.add(path, Host, cpus=64, memory_mib=memory, cpu_overcommit=64.0, configs=vms)
        for v in vms:
            m.add(f"{path}/{v}", VM, vcpus=1, memory_mib=VM_MIB, uid=v)
        return path

    hot_paths = [
        add_host(
            f"hot-{h:03d}", HOT_HOST_MIB, [f"c{h * VMS_PER_HOT_HOST + i}" for i in range(VMS_PER_HOT_HOST)]
        )
        for h in range(hot)
    ]
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        if i % 2 == 0:
            vm = f"c{rng.randrange(hot * VMS_PER_HOT_HOST)}"
            calls.append(("migrate_vm", {"vm": f"{REGION}/{vm}", "dest": rng.choice(hot_paths)}))
        else:
            add_host(f"src-{i:05d}", 4 * VM_MIB, [f"i{i}"])
            dest = add_host(f"dst-{i:05d}", 4 * VM_MIB, [])
            calls.append(("migrate_vm", {"vm": f"{REGION}/i{i}", "dest": dest}))
    return m, calls


def drain(scheduler: type[Scheduler], n: int, hot: int, finish: int, seed: int) -> tuple[SchedulerRig, float]:
    """Queue the ``n`` migrations at once, then pass and finish until none is left; the seconds it took."""
    model, calls = workload(n, hot, seed)
    rig = SchedulerRig(model, scheduler)
    start = time.perf_counter()
    for procedure, args in calls:
        rig.submit(procedure, args)
    while not rig.idle:
        rig.schedule()
        for t in rig.running()[:finish]:
            rig.finish(t)
    return rig, time.perf_counter() - start


def measure(
    scheduler: type[Scheduler], n: int, hot: int, finish: int, seed: int, profile: bool
) -> tuple[SchedulerRig, dict[str, Any]]:
    prof = cProfile.Profile() if profile else None
    if prof is not None:
        prof.enable()
    rig, seconds = drain(scheduler, n, hot, finish, seed)
    if prof is not None:
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        print(f"--- {scheduler.__name__}, N={n}\n{out.getvalue()}", file=sys.stderr)
    states: dict[str, int] = {}
    for t in rig.txns:
        states[t.state.value] = states.get(t.state.value, 0) + 1
    simulations = sum(1 for _, state, _, _ in rig.decisions if state in ("STARTED", "ABORTED", "DEFERRED"))
    return rig, {
        "seconds": round(seconds, 3),
        "us_per_admission": round(seconds / n * 1e6, 1),
        "states": states,
        "deferrals": sum(t.deferrals for t in rig.txns),
        "simulations": simulations,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="500,2000,5000", help="backlog sizes N, comma-separated")
    ap.add_argument("--hot", type=int, default=16, help="shared hosts the conflicting half moves VMs among")
    ap.add_argument("--finish", type=int, default=8, help="running transactions finished after each pass")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print each run's cProfile top on stderr")
    ap.add_argument("--json", action="store_true", help="accepted for uniformity: the output is JSON")
    a = ap.parse_args()
    try:
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be integers separated by commas, not {a.sizes!r}")
    if not sizes or min(sizes) < 1 or a.hot < 2 or a.finish < 1:
        ap.error("--sizes must be positive, --hot at least 2, --finish at least 1")
    rows = []
    for n in sizes:
        ref_rig, ref = measure(ReferenceScheduler, n, a.hot, a.finish, a.seed, a.profile)
        new_rig, new = measure(Scheduler, n, a.hot, a.finish, a.seed, a.profile)
        same = new_rig.decisions == ref_rig.decisions
        rows.append(
            {
                "n": n,
                "reference": ref,
                "incremental": new,
                "speedup": round(ref["seconds"] / new["seconds"], 2) if new["seconds"] else None,
                "same_decisions": same,
            }
        )
        if not same:
            print(f"N={n}: the scheduler and the reference decided differently", file=sys.stderr)
    print(
        json.dumps({"hot_hosts": a.hot, "finish_per_pass": a.finish, "seed": a.seed, "runs": rows}, indent=2)
    )
    return 0 if all(r["same_decisions"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
