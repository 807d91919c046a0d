"""Parallel speed-up of the embedded controller: spawns on disjoint hosts run at once, spawns on one host
one after the other. Wall time of the batch against the sum of the physical steps' durations (what a
serial controller would take); the test suite checks the overlap itself, this measures what it buys.

    python benchmarks/parallel_spawns.py --json [--rounds N] [--latency S]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from typing import Any

from tropic.drivers import SimDriver, Step
from tropic.model import project
from tropic.scenario import DatacenterSpec, build_datacenter, host_path, image_path
from tropic.txn import Controller, State


class TimedSim(SimDriver):
    """Records how long each physical step was in flight."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.busy = 0.0
        self._mu = threading.Lock()

    def execute(self, step: Step) -> None:
        start = time.monotonic()
        try:
            super().execute(step)
        finally:
            with self._mu:
                self.busy += time.monotonic() - start


def spawn(region: str, host: int, name: str) -> dict[str, Any]:
    return {
        "host": host_path(region, host),
        "name": name,
        "image": image_path(region),
        "vcpus": 1,
        "memory_mib": 512,
    }


def one_round(latency: float, i: int) -> dict[str, float]:
    model = build_datacenter(DatacenterSpec(regions=("r1", "r2"), hosts_per_region=3, host_memory_mib=10**6))
    sim = TimedSim(latency=latency)
    sim.load(project(model))
    started = time.monotonic()
    with Controller(model, sim, workers=8) as c:
        txns = [c.submit("spawn_vm", spawn("r1", 1, f"s{i}-{k}")) for k in range(3)]
        txns += [
            c.submit("spawn_vm", spawn(r, h, f"o{i}-{r}{h}")) for r, h in (("r1", 2), ("r1", 3), ("r2", 1))
        ]
        assert c.drain(120)
        assert all(t.state is State.COMMITTED for t in txns)
    elapsed = time.monotonic() - started
    return {"elapsed_s": elapsed, "serial_s": sim.busy, "ratio": elapsed / sim.busy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wall time of disjoint spawns against their serial time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per simulated device action")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rounds = [one_round(args.latency, i) for i in range(args.rounds)]
    out = {
        "transactions": 6,
        "latency_s": args.latency,
        "rounds": args.rounds,
        "elapsed_s_median": round(statistics.median(r["elapsed_s"] for r in rounds), 3),
        "serial_s_median": round(statistics.median(r["serial_s"] for r in rounds), 3),
        "ratio_median": round(statistics.median(r["ratio"] for r in rounds), 3),
        "ratio_rounds": [round(r["ratio"], 3) for r in rounds],
    }
    print(json.dumps(out, indent=2) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
