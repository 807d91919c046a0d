"""Constraint-check overhead per transaction, at two model sizes (it must not grow with the model).

For each spawn_vm, the procedure runs on a fresh copy-on-write view, then only the constraint check is
timed (the constraints of every touched resource and its ancestors).

    python benchmarks/constraint_overhead.py --json [--count N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from tropic.scenario.bench import bench_model
from tropic.txn import REGISTRY


def measure(preload_vms: int, count: int) -> dict[str, Any]:
    model = bench_model(hosts=count, preload_vms=preload_vms)
    proc = REGISTRY.get("spawn_vm")
    hosts = [p for p, n in model.nodes.items() if n.kind == "host" and "/bg" not in p]
    samples: list[float] = []
    for i in range(count):
        host = hosts[i % len(hosts)]
        view = model.view()
        args = {
            "host": host,
            "name": f"c{i}",
            "image": f"/storage/{host.split('/')[2]}/san-1/img",
            "vcpus": 1,
            "memory_mib": 256,
        }
        proc.run(view, args)
        t0 = time.perf_counter()
        violations = view.check_constraints()
        samples.append((time.perf_counter() - t0) * 1e6)
        assert not violations
    samples.sort()
    return {
        "model_resources": len(model.nodes),
        "vms_in_model": preload_vms,
        "check_us_mean": round(statistics.fmean(samples), 2),
        "check_us_p50": round(samples[len(samples) // 2], 2),
        "check_us_p99": round(samples[int(len(samples) * 0.99)], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="constraint-check overhead per spawn_vm transaction")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--big", type=int, default=1_000_000, help="VMs in the large model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    small = measure(1_000, args.count)
    big = measure(args.big, args.count)
    out = {
        "small": small,
        "big": big,
        "ratio_big_to_small": round(big["check_us_mean"] / small["check_us_mean"], 2),
    }
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
