"""The same 4-step spawn through OpenStack TaskFlow's in-memory serial engine and through tropic with
durability on (SQLite, fsync per group commit), side by side in one run; prints JSON with the ratio.

TaskFlow runs one linear flow per spawn (clone image, export volume, import volume, create VM), each
task a no-op device call with a revert defined. tropic runs spawn_vm transactions on its zero-latency
simulated devices (which do more work than a no-op: they keep the devices' state), each simulated,
constraint-checked, locked and durably logged.

    python benchmarks/vs_taskflow.py --json [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow

from tropic.scenario.bench import BenchSpec, run_txn_bench

DEVICE_CALLS = 0


def device_call(name: str) -> str:
    global DEVICE_CALLS
    DEVICE_CALLS += 1
    return name


class Step(task.Task):  # type: ignore[misc]
    def execute(self) -> str:
        return device_call(self.name)

    def revert(self, result: Any = None, **kwargs: Any) -> None:
        device_call("undo-" + self.name)


def taskflow_rate(count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        flow = linear_flow.Flow(f"spawn-{i}").add(
            Step("clone_image"), Step("export_volume"), Step("import_volume"), Step("create_vm")
        )
        taskflow.engines.run(flow, engine="serial")
    return count / (time.perf_counter() - start)


def tropic_rate(count: int) -> tuple[float, dict[str, Any]]:
    # One host per spawn, as a placement scheduler would spread them (TaskFlow's flows never conflict).
    result = run_txn_bench(BenchSpec(count=count, hosts=count, durable=True))
    return float(result["throughput_txn_s"]), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="spawns per round and system")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    tf_rates: list[float] = []
    tr_rates: list[float] = []
    last: dict[str, Any] = {}
    for _ in range(args.rounds):
        tf_rates.append(taskflow_rate(args.count))
        rate, last = tropic_rate(args.count)
        tr_rates.append(rate)
    tf = statistics.median(tf_rates)
    tr = statistics.median(tr_rates)
    out = {
        "count": args.count,
        "rounds": args.rounds,
        "taskflow_txn_s": round(tf, 1),
        "tropic_txn_s": round(tr, 1),
        "ratio": round(tr / tf, 2),
        "taskflow_rounds": [round(r, 1) for r in tf_rates],
        "tropic_rounds": [round(r, 1) for r in tr_rates],
        "tropic_latency_ms": last.get("latency_ms"),
        "tropic_durable": True,
        "taskflow_engine": "serial, in memory (no persistence)",
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"TaskFlow {tf:.0f} flows/s, tropic {tr:.0f} durable txn/s: ratio {tr / tf:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
