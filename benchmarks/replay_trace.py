"""Replay the real Azure VM trace (../shared/data/azure-v1; the shipped sample when it is absent) against
an embedded controller with a durable SQLite store, time-compressed, and print the summary as JSON.

    python benchmarks/replay_trace.py [--speedup 500] [--max-bins N] [--store URI] [--report DIR]
    python benchmarks/replay_trace.py --sweep 100,250,500,1000 --max-bins 200 [--p99-bound-ms 100]
    python benchmarks/replay_trace.py --zk-ensemble 3 --sweep 50,100,200 --max-bins 50

``--zk-ensemble N`` starts a fresh N-server ZooKeeper ensemble on loopback (tests/zkharness.py, fsync on;
ZooKeeper from scripts/install-zookeeper.sh) and replays against the ZooKeeper store, one chroot a run.

The whole trace at 500x lasts about 16 minutes (491,400 trace seconds / 500) and runs ~800,000
transactions. Figures made from the real trace must credit the Azure Public Dataset V1 (CC-BY 4.0) and
the trace_generation_rnn project (MIT).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from tropic.replay import ReplaySpec, TraceFiles, run_replay
from tropic.replay.engine import plan_events
from tropic.replay.report import write_report, write_sweep_report
from tropic.replay.sweep import parse_speedups, run_uri, sweep

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azure-v1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speedup", type=float, default=500.0)
    ap.add_argument("--sweep", help="comma-separated speedups: find the highest with p99 under the bound")
    ap.add_argument("--p99-bound-ms", type=float, default=100.0)
    ap.add_argument("--max-bins", type=int, default=None)
    ap.add_argument("--store", default=None, help="store URI (default: SQLite in a temporary folder)")
    ap.add_argument("--report", default=None, help="folder for the markdown report and plots")
    ap.add_argument("--data", default=str(REAL), help="trace directory (default: the real trace)")
    ap.add_argument("--zk-ensemble", type=int, default=0, help="start an N-server ZooKeeper ensemble")
    args = ap.parse_args(argv)
    if args.zk_ensemble:
        return _with_ensemble(args.zk_ensemble, argv if argv is not None else sys.argv[1:])
    directory = Path(args.data)
    files = (
        TraceFiles.in_directory(directory) if (directory / "arrivals.txt").is_file() else TraceFiles.sample()
    )
    started = time.perf_counter()
    trace = files.load(max_bins=args.max_bins)
    load_s = time.perf_counter() - started
    spec = ReplaySpec(speedup=args.speedup, store=args.store)
    events = plan_events(trace, spec)
    out: dict[str, Any]
    if args.sweep:

        def run_at(s: float) -> Any:
            result = run_replay(
                trace, dataclasses.replace(spec, speedup=s, store=run_uri(args.store, s)), events=events
            )
            if args.report:
                write_report(result, Path(args.report) / f"s{s:g}")
            return result

        found = sweep(parse_speedups(args.sweep), run_at, bound_ms=args.p99_bound_ms)
        if args.report:
            write_sweep_report(found, args.report)
        out = found.to_dict()
    else:
        result = run_replay(trace, spec, events=events)
        if args.report:
            write_report(result, args.report)
        out = dict(result.summary)
    out["trace_load_s"] = round(load_s, 3)
    out["command"] = " ".join(["python", "benchmarks/replay_trace.py", *(argv or sys.argv[1:])])
    json.dump(out, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


def _with_ensemble(servers: int, argv: list[str]) -> int:
    """Run ``main`` again with ``--store`` pointing at a fresh loopback ensemble of ``servers`` servers."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from zkharness import ZooKeeperEnsemble, find_zookeeper

    install = find_zookeeper()
    if install is None:
        print("ZooKeeper is not installed: run scripts/install-zookeeper.sh", file=sys.stderr)
        return 2
    rest: list[str] = []  # argv without --zk-ensemble and --store (and their values)
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--zk-ensemble", "--store"):
            skip = True
        elif not a.startswith(("--zk-ensemble=", "--store=")):
            rest.append(a)
    with ZooKeeperEnsemble(size=servers, install=install, heap_mb=512) as ensemble:
        ensemble.start_all(timeout=120)
        return main([*rest, "--store", ensemble.uri("/replay")])


if __name__ == "__main__":
    sys.exit(main())
