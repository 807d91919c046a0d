"""Raw ZooKeeper throughput through kazoo, the floor under tropic's distributed store.

Starts a fresh 3-server loopback ensemble (tests/zkharness.py), then measures synchronous creates/s (one
request in flight), pipelined creates/s (kazoo ``create_async`` with a window of requests in flight) and
multi-op transaction commits/s (``client.transaction()`` of 10 creates each, committed synchronously).

    .venv/bin/python benchmarks/zk_raw.py --json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tropic.store.zkclient import open_client
from zkharness import ZooKeeperEnsemble, find_zookeeper


def _zookeeper_version() -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "zookeeper"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _fresh_parent(client: Any) -> str:
    # A new parent per measure: deleting thousands of nodes between rounds would cost more than the
    # measures themselves.
    path: str = client.create("/run-", b"", sequence=True)
    return path


def bench_sync(client: Any, count: int) -> dict[str, Any]:
    parent = _fresh_parent(client)
    started = time.perf_counter()
    for n in range(count):
        client.create(f"{parent}/n{n:08d}", b"x" * 64)
    elapsed = time.perf_counter() - started
    return {"creates": count, "seconds": round(elapsed, 3), "creates_per_s": round(count / elapsed, 1)}


def bench_pipelined(client: Any, count: int, window: int) -> dict[str, Any]:
    parent = _fresh_parent(client)
    in_flight: collections.deque[Any] = collections.deque()
    started = time.perf_counter()
    for n in range(count):
        if len(in_flight) >= window:
            in_flight.popleft().get(timeout=60)
        in_flight.append(client.create_async(f"{parent}/n{n:08d}", b"x" * 64))
    while in_flight:
        in_flight.popleft().get(timeout=60)
    elapsed = time.perf_counter() - started
    return {
        "creates": count,
        "window": window,
        "seconds": round(elapsed, 3),
        "creates_per_s": round(count / elapsed, 1),
    }


def bench_transactions(client: Any, commits: int, ops: int) -> dict[str, Any]:
    parent = _fresh_parent(client)
    started = time.perf_counter()
    for n in range(commits):
        txn = client.transaction()
        for k in range(ops):
            txn.create(f"{parent}/c{n:06d}-{k:02d}", b"x" * 64)
        results = txn.commit()
        if any(isinstance(r, Exception) for r in results):
            raise RuntimeError(f"transaction {n} failed: {results}")
    elapsed = time.perf_counter() - started
    return {
        "commits": commits,
        "ops_per_commit": ops,
        "seconds": round(elapsed, 3),
        "commits_per_s": round(commits / elapsed, 1),
        "ops_per_s": round(commits * ops / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measure; medians reported")
    parser.add_argument("--sync", type=int, default=1500, help="synchronous creates a round (default 1500)")
    parser.add_argument(
        "--pipelined", type=int, default=6000, help="pipelined creates a round (default 6000)"
    )
    parser.add_argument(
        "--window", type=int, default=1000, help="pipelined requests in flight (default 1000)"
    )
    parser.add_argument("--txns", type=int, default=400, help="transactions a round (default 400)")
    parser.add_argument("--txn-ops", type=int, default=10, help="creates per transaction (default 10)")
    parser.add_argument(
        "--server",
        choices=["any", "leader", "follower"],
        default="any",
        help="connect to any server (kazoo picks), or only to the leader or to one follower",
    )
    parser.add_argument("--no-fsync", action="store_true", help="forceSync=no on the servers")
    args = parser.parse_args(argv)
    if min(args.rounds, args.sync, args.pipelined, args.window, args.txns, args.txn_ops) < 1:
        parser.error("counts must be positive")

    install = find_zookeeper()
    if install is None:
        print("ZooKeeper is not installed: run scripts/install-zookeeper.sh", file=sys.stderr)
        return 2

    with ZooKeeperEnsemble(install=install, force_sync=not args.no_fsync) as ensemble:
        started = time.perf_counter()
        ensemble.start_all(timeout=120)
        startup = time.perf_counter() - started
        hosts = ensemble.connect_string
        if args.server != "any":
            leader = ensemble.leader()
            index = leader if args.server == "leader" else next(i for i in range(3) if i != leader)
            assert index is not None
            hosts = f"127.0.0.1:{ensemble.client_port(index)}"
        client = open_client(f"zk://{hosts}/bench", connect_timeout=30)
        try:
            # Warm the JITs of the servers and of this process before measuring.
            bench_pipelined(client, 2000, args.window)
            bench_sync(client, 300)
            bench_transactions(client, 50, args.txn_ops)
            rounds: dict[str, list[dict[str, Any]]] = {"sync": [], "pipelined": [], "transactions": []}
            for _ in range(args.rounds):
                rounds["sync"].append(bench_sync(client, args.sync))
                rounds["pipelined"].append(bench_pipelined(client, args.pipelined, args.window))
                rounds["transactions"].append(bench_transactions(client, args.txns, args.txn_ops))
        finally:
            client.stop()
            client.close()

    report = {
        "benchmark": "zk_raw",
        "ensemble": {
            "servers": 3,
            "address": "127.0.0.1 (loopback)",
            "zookeeper": _zookeeper_version(),
            "heap_mb": ensemble.heap_mb,
            "tick_ms": ensemble.tick_ms,
            "force_sync": ensemble.force_sync,
            "startup_s": round(startup, 2),
            "client_connected_to": args.server,
        },
        "sync_creates_per_s": _median(rounds["sync"], "creates_per_s"),
        "pipelined_creates_per_s": _median(rounds["pipelined"], "creates_per_s"),
        "txn_commits_per_s": _median(rounds["transactions"], "commits_per_s"),
        "txn_ops_per_s": _median(rounds["transactions"], "ops_per_s"),
        "rounds": rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kazoo": _kazoo_version(),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"3-server ZooKeeper on loopback (fsync {'on' if ensemble.force_sync else 'off'}), medians:")
        print(f"  synchronous creates/s      {report['sync_creates_per_s']:>10,.0f}")
        pipelined = report["pipelined_creates_per_s"]
        print(f"  pipelined creates/s        {pipelined:>10,.0f}  (window {args.window})")
        print(
            f"  {args.txn_ops}-op transactions/s     {report['txn_commits_per_s']:>10,.0f}"
            f"  ({report['txn_ops_per_s']:,.0f} ops/s)"
        )
    return 0


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(float(r[key]) for r in rounds)), 1)


def _kazoo_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kazoo")
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
