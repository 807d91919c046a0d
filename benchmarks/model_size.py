"""Durable spawn_vm throughput with 1K vs 1M VMs already in the model, side by side in one run.

The spawns target the same empty hosts in both runs; the extra VMs sit on background hosts (8 per
host, TROPIC's density), so only the size of the model differs.

    python benchmarks/model_size.py --json [--count N] [--big V]
"""

from __future__ import annotations

import argparse
import json
import sys

from tropic.scenario.bench import BenchSpec, run_txn_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="throughput at 1K vs 1M VMs in the model")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = {}
    for label, vms in (("small", 1_000), ("big", args.big), ("small_again", 1_000)):
        runs[label] = run_txn_bench(BenchSpec(count=args.count, hosts=args.count, preload_vms=vms))
    small = (runs["small"]["throughput_txn_s"] + runs["small_again"]["throughput_txn_s"]) / 2
    big = runs["big"]["throughput_txn_s"]
    out = {
        "count": args.count,
        "throughput_1k_vms": small,
        "throughput_big": big,
        "vms_big": args.big,
        "ratio": round(big / small, 3),
        "p50_ms_1k": runs["small"]["latency_ms"]["p50"],
        "p50_ms_big": runs["big"]["latency_ms"]["p50"],
        "big_model_build_s": runs["big"]["model_build_s"],
        "big_store_init_s": runs["big"]["store_init_s"],
        "big_model_resources": runs["big"]["model_resources"],
    }
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
