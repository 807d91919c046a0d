"""One PlanetLab day under one of the bench's policies, the moves applied directly (no controller).

The same fleet, initial placement, snapshots, policies and accounting as ``tropic autopilot bench``, but
each plan's moves change the placement at once instead of running as ``migrate_vm`` transactions. When
the bench refuses no transaction (``refused`` 0, as in every full-day run recorded in
docs/benchmarks.md) the figures are the bench's to the last digit, in a fraction of its time (LR-MMT's
55K transactions are most of a bench run). It is a cross-check and a quick way to explore settings, not
a replacement for the bench: it does not test the transaction layer.

Run: ``.venv/bin/python benchmarks/autopilot_day_replay.py --trace DAY.csv.gz --policy lr-mmt --json``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tropic.autopilot.base import HostState, Policy, Snapshot, VMState
from tropic.autopilot.bench.compare import tropic_policy
from tropic.autopilot.bench.datacenter import REGION, first_fit_placement, host_path, vm_name
from tropic.autopilot.bench.fleet import Fleet, IntArray, cloudsim_fleet
from tropic.autopilot.bench.lr_mmt import LrMmt
from tropic.autopilot.bench.metrics import Accounting
from tropic.autopilot.bench.runner import BUDGET, RunResult
from tropic.autopilot.bench.watcher import NoConsolidation, WatcherConsolidation
from tropic.autopilot.bench.workload import read_trace


def _snapshot(fleet: Fleet, placement: IntArray, util: np.ndarray, at: float) -> Snapshot:
    """As the bench's runner builds it (``bench/runner.py``)."""
    paths = [host_path(fleet, h) for h in range(fleet.hosts)]
    on: list[list[str]] = [[] for _ in range(fleet.hosts)]
    vms: dict[str, VMState] = {}
    memory = fleet.vm_memory_held
    for v, h in enumerate(placement):
        path = f"{paths[int(h)]}/{vm_name(v)}"
        on[int(h)].append(path)
        vms[path] = VMState(
            path=path,
            host=paths[int(h)],
            vcpus=1,
            memory_mib=int(memory[v]),
            uid=vm_name(v),
            demand=float(util[v]),
            labels={"mips": f"{fleet.vm_mips[v]:g}", "ram_mb": f"{fleet.vm_ram[v]:g}"},
        )
    hosts = {
        p: HostState(
            p,
            REGION,
            t.cores,
            t.ram_mb,
            float(max(fleet.vms, 1)),
            vms=tuple(on[h]),
            labels={"mips_per_cpu": f"{t.pe_mips:g}", "power_model": t.name},
            powered=bool(on[h]),
        )
        for h, (p, t) in enumerate(zip(paths, fleet.host_types, strict=True))
    }
    return Snapshot(at=at, hosts=hosts, vms=vms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--policy", default="tropic", choices=("none", "watcher", "lr-mmt", "tropic"))
    parser.add_argument("--hosts", type=int, default=800)
    parser.add_argument("--vms", type=int, default=None)
    parser.add_argument("--headroom", type=float, default=0.9)
    parser.add_argument("--percentile", type=float, default=None)
    parser.add_argument("--time-limit", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    trace = read_trace(args.trace, max_vms=args.vms)
    fleet = cloudsim_fleet(args.hosts, trace.names)
    placement = first_fit_placement(fleet).copy()
    policy: Policy | None
    if args.policy == "tropic":
        policy = tropic_policy(args.headroom, args.percentile)[0]
    else:
        policy = {"none": NoConsolidation, "watcher": WatcherConsolidation, "lr-mmt": LrMmt}[args.policy]()
    assert policy is not None
    index = {host_path(fleet, h): h for h in range(fleet.hosts)}
    acc = Accounting(fleet)
    pass_s: list[float] = []
    for k in range(trace.steps):
        moved: list[int] = []
        if k > 0:
            snap = _snapshot(fleet, placement, trace.util[:, k], k * 300.0)
            start = time.perf_counter()
            plan = policy.plan(snap, budget=BUDGET, time_limit=args.time_limit)
            pass_s.append(time.perf_counter() - start)
            for m in plan.moves:
                v = int(m.vm.rsplit("/", 1)[-1].split("-")[1])
                placement[v] = index[m.dest]
                moved.append(v)
        if k + 1 < trace.steps:
            acc.interval(placement, trace.util[:, k], trace.util[:, k + 1], moved)
    out = {
        "trace": args.trace,
        "policy": args.policy,
        "hosts": fleet.hosts,
        "vms": fleet.vms,
        "headroom": args.headroom if args.policy == "tropic" else None,
        "percentile": args.percentile if args.policy == "tropic" else None,
        **RunResult(args.policy, acc, pass_s).metrics(),
    }
    print(json.dumps(out, indent=2 if args.json else None))


if __name__ == "__main__":
    main()
