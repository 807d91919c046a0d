"""Datacenter-scale model benchmark: build a logical model of H hosts and V VMs (TROPIC's 225K hosts /
1.8M VMs by default), report build and store-load time and resident memory, and compare durable spawn_vm
throughput and paced p50 latency at that size with a 1K-VM model of the same density (``ratio``); prints
JSON.

    python benchmarks/scale_model.py [--hosts 225000] [--vms 1800000] [--txns 5000] [--no-gc-freeze]
"""

from __future__ import annotations

import argparse
import json
import sys

from tropic.replay.scale import ScaleSpec, run_scale_bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=225_000)
    ap.add_argument("--vms", type=int, default=1_800_000)
    ap.add_argument("--baseline-vms", type=int, default=1_000)
    ap.add_argument("--txns", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=5, help="throughput rounds per model, alternating")
    ap.add_argument("--latency-txns", type=int, default=2_000)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--no-durability", action="store_true")
    ap.add_argument("--no-gc-freeze", action="store_true")
    args = ap.parse_args(argv)
    spec = ScaleSpec(
        hosts=args.hosts,
        vms=args.vms,
        baseline_vms=args.baseline_vms,
        txns=args.txns,
        rounds=args.rounds,
        latency_txns=args.latency_txns,
        rate=args.rate,
        durable=not args.no_durability,
        freeze_gc=not args.no_gc_freeze,
    )
    result = run_scale_bench(spec, progress=lambda message: print(message, file=sys.stderr))
    result["command"] = " ".join(["python", "benchmarks/scale_model.py", *(argv or sys.argv[1:])])
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
