"""Time to read the real Azure trace (410,276 VMs) from ../shared/data/azure-v1 (or ``--dir``). The test
suite checks what is read (tests/trace/test_trace_azure_real.py); how fast is this figure.

    python benchmarks/trace_load.py --json [--rounds N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tropic.trace import load_azure_trace

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azure-v1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="seconds to load the real Azure trace")
    parser.add_argument("--dir", type=Path, default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.dir / "arrivals.txt").is_file():
        print(f"no Azure trace at {args.dir} (arrivals.txt missing)", file=sys.stderr)
        return 2
    seconds: list[float] = []
    vms = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        vms = len(load_azure_trace(args.dir))
        seconds.append(time.perf_counter() - started)
    out = {
        "vms": vms,
        "rounds": args.rounds,
        "load_s_median": round(statistics.median(seconds), 2),
        "load_s_rounds": [round(s, 2) for s in seconds],
    }
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
