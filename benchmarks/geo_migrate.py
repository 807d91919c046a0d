"""Cross-region live migrations as transactions: ``migrate_member`` on the embedded controller (sim
devices, no device latency), members moving back and forth between regions, several services at once.
Prints the transactions per second, the latency of one migration (submit to final) and the pre-copy
figures of the moves (modelled from the region pair; the sim does not sleep them).

    python benchmarks/geo_migrate.py --json [--services N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from tropic.drivers import SimDriver
from tropic.model import project
from tropic.scenario import DatacenterSpec, build_datacenter, host_path
from tropic.txn import Controller, State

REGIONS = ("r1", "r2", "r3")
RTT = {"r1": {"r2": 80, "r3": 200}, "r2": {"r1": 80, "r3": 120}, "r3": {"r1": 200, "r2": 120}}


def run(services: int, rounds: int) -> dict[str, Any]:
    model = build_datacenter(DatacenterSpec(regions=REGIONS, hosts_per_region=services + 1))
    sim = SimDriver()
    sim.load(project(model))
    c = Controller(model, sim, workers=4).start()

    def ok(proc: str, args: dict[str, Any]) -> Any:
        t = c.wait(c.submit(proc, args), 120)
        assert t.state is State.COMMITTED, (proc, t.error, t.violation)
        return t

    try:
        ok("set_links", {"rtt_json": json.dumps(RTT)})
        ok("create_image", {"name": "img", "region": "r1"})
        ok("open_image_write", {"image": "img", "region": "r1", "session": "b"})
        ok("close_image_write", {"image": "img", "session": "b", "digest": "sha256:b", "size_mib": 2048})
        for s in range(services):
            ok(
                "create_replicated_service",
                {"name": f"s{s}", "image": "/images/img", "vcpus": 1, "memory_mib": 4096},
            )
            ok("spawn_member", {"service": f"s{s}", "name": f"s{s}-a", "host": host_path("r1", s + 1)})
        latencies: list[float] = []
        downtimes: list[float] = []
        transfers: list[float] = []
        steps: list[int] = []
        start = time.perf_counter()
        for r in range(rounds):
            dest = REGIONS[(r + 1) % len(REGIONS)]
            ids = []
            sent: dict[int, float] = {}
            for s in range(services):
                i = c.submit("migrate_member", {"service": f"s{s}", "member": f"s{s}-a", "region": dest})
                sent[i] = time.perf_counter()
                ids.append(i)
            for i in ids:
                t = c.wait(i, 120)
                assert t.state is State.COMMITTED, (t.error, t.violation)
                latencies.append(time.perf_counter() - sent[i])
                live = next(a for a in t.actions if a.action == "live_migrate")
                downtimes.append(float(live.args["downtime_s"]))
                transfers.append(float(live.args["transfer_s"]))
                steps.append(len(t.actions))
        wall = time.perf_counter() - start
        report = c.check()
        n = services * rounds
        return {
            "services": services,
            "rounds": rounds,
            "migrations": n,
            "wall_s": round(wall, 3),
            "migrations_per_s": round(n / wall, 1),
            "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
            "latency_ms_max": round(max(latencies) * 1000, 2),
            "steps_per_migration_mean": round(statistics.mean(steps), 2),
            "modelled_downtime_s_mean": round(statistics.mean(downtimes), 3),
            "modelled_transfer_s_mean": round(statistics.mean(transfers), 1),
            "consistent": report["consistent"],
            "orphans": len(report["orphans"]),
        }
    finally:
        c.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=8)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--json", action="store_true", help="print JSON (the default output)")
    a = p.parse_args()
    print(json.dumps(run(a.services, a.rounds)))


if __name__ == "__main__":
    main()
