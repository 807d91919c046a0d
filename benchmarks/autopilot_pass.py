"""One consolidation pass on a generated fleet: plan time, and hosts and migrations side by side with the
baselines (first-fit decreasing from scratch, and the greedy drain heuristic at the same budget).

Run: ``.venv/bin/python benchmarks/autopilot_pass.py --vms 10000 --hosts 1000 --json``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from tropic.autopilot.policies.consolidation import consolidate
from tropic.autopilot.policies.consolidation_search import first_fit_decreasing, greedy_drain
from tropic.autopilot.policies.consolidation_state import ConsolidationConfig, Fleet, Working
from tropic.autopilot.policies.fleets import generate_fleet


def _row(name: str, work: Working, seconds: float, budget: int | None) -> dict[str, Any]:
    return {
        "method": name,
        "hosts": int(np.count_nonzero(work.on())),
        "migrations": work.moved,
        "budget": budget,
        "violations": len(work.violations(budget if budget is not None else len(work.assign))),
        "plan_s": round(seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--budget", type=int, default=500, help="migrations per pass")
    parser.add_argument("--time-limit", type=float, default=8.0, help="solver seconds per pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gib", type=int, default=256, help="memory per host (48 CPUs each)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    snapshot = generate_fleet(
        args.hosts,
        args.vms,
        seed=args.seed,
        memory_mib=args.memory_gib * 1024,
        anti_affinity_groups=args.vms // 50,
    )
    config = ConsolidationConfig(seed=args.seed)
    fleet = Fleet(snapshot, config)
    # the fewest hosts any placement needs: total memory (or demand within the headroom) over one host's
    bound = max(math.ceil(sum(fleet.m) / int(fleet.cap_m[0])), math.ceil(sum(fleet.d) / int(fleet.cap_d[0])))
    rows: list[dict[str, Any]] = []

    start = time.monotonic()
    ffd = Working(Fleet(snapshot, config))
    first_fit_decreasing(ffd)
    rows.append(_row("ffd (repack, no budget)", ffd, time.monotonic() - start, None))

    for budget in (args.budget, ffd.moved):
        start = time.monotonic()
        greedy = Working(Fleet(snapshot, config))
        greedy_drain(greedy, budget)
        rows.append(_row("greedy drain", greedy, time.monotonic() - start, budget))
        start = time.monotonic()
        result = consolidate(snapshot, budget=budget, time_limit=args.time_limit, config=config)
        row = _row("cp-sat", result.working, time.monotonic() - start, budget)
        row["method"] = f"cp-sat ({result.method})"
        row["gain"] = round(result.plan.gain, 3)
        row["cost"] = round(result.plan.cost, 3)
        rows.append(row)

    # The same with migrations nearly free (1/1000 of a host each): hosts dominate the objective.
    cheap = ConsolidationConfig(seed=args.seed, migration_weight=0.0, migration_overhead=0.001)
    start = time.monotonic()
    result = consolidate(snapshot, budget=ffd.moved, time_limit=args.time_limit, config=cheap)
    row = _row("cp-sat", result.working, time.monotonic() - start, ffd.moved)
    row["method"] = f"cp-sat, cheap migrations ({result.method})"
    rows.append(row)

    out = {
        "vms": args.vms,
        "hosts": args.hosts,
        "memory_gib": args.memory_gib,
        "headroom": config.headroom,
        "time_limit_s": args.time_limit,
        "lower_bound_hosts": bound,
        "results": rows,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.vms} VMs on {args.hosts} hosts, headroom {config.headroom:g}, lower bound {bound} hosts")
    print(f"{'method':<48} {'budget':>7} {'hosts':>6} {'migrations':>10} {'plan s':>7}")
    for r in rows:
        budget = "-" if r["budget"] is None else str(r["budget"])
        print(f"{r['method']:<48} {budget:>7} {r['hosts']:>6} {r['migrations']:>10} {r['plan_s']:>7}")


if __name__ == "__main__":
    main()
