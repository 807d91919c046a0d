"""Transactions per second through tropic's ZooKeeper store, on a fresh 3-server loopback ensemble.

Two measures, each a stream of ``spawn_vm`` transactions on hosts spread over many regions (so that
transactions rarely wait for each other's locks, as in TROPIC's EC2 trace), on zero-latency devices:

* ``local``: one controller on :class:`~tropic.store.zk.ZooKeeperStore` with in-process worker threads.
  Every state change goes through ZooKeeper (group commits: one multi per batch), the devices do not.
* ``workers``: distributed mode: the controller on the ZooKeeper store with its physical queue, and
  ``--workers`` worker processes (``tropic worker``) on simulated devices shared through one file. Every
  transaction crosses ZooKeeper three times (start, completion report, final state).

    .venv/bin/python benchmarks/zk_store.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tropic.drivers.sim import SimDriver
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import Model, project
from tropic.scenario.bench import bench_model, percentile, spawn_args
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import open_client
from tropic.txn import Controller, State, Transaction
from tropic.txn.remote import RemoteExecutor
from zkharness import ZooKeeperEnsemble, find_zookeeper

TROPIC = [sys.executable, "-m", "tropic.cli"]


def _hosts(model: Model) -> list[str]:
    return [p for p, n in model.nodes.items() if n.kind == "host"]


def _submit_all(c: Controller, model: Model, count: int, offset: int = 0) -> list[Transaction]:
    hosts = _hosts(model)
    out = []
    for i in range(offset, offset + count):
        out.append(c.submit("spawn_vm", spawn_args(hosts[i % len(hosts)], f"b{i}"), submitter="bench"))
    return out


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _summary(txns: list[Transaction], elapsed: float, store: ZooKeeperStore) -> dict[str, Any]:
    lat = [t.latency_s * 1000 for t in txns if t.latency_s is not None]
    committed = sum(t.state is State.COMMITTED for t in txns)
    return {
        "transactions": len(txns),
        "committed": committed,
        "seconds": round(elapsed, 2),
        "txn_per_s": round(committed / elapsed, 1),
        "latency_ms": {"p50": round(percentile(lat, 50), 1), "p99": round(percentile(lat, 99), 1)},
        "store_commits": store.commits,
        "snapshots": store.snapshots,
        "txn_per_commit": round(len(txns) * 3 / max(1, store.commits), 1),
    }


def _measured(c: Controller, model: Model, store: ZooKeeperStore, count: int) -> dict[str, Any]:
    """Warm up (and wait for any workers), then ``count`` spawns as fast as possible: their figures."""
    _submit_all(c, model, 300, offset=10**6)
    assert c.drain(300)
    commits = store.commits
    cpu = _cpu(resource.RUSAGE_SELF)
    started = time.perf_counter()
    txns = _submit_all(c, model, count)
    assert c.drain(600)
    elapsed = time.perf_counter() - started
    store.commits -= commits
    out = _summary(txns, elapsed, store)
    out["controller_cpu_s"] = round(_cpu(resource.RUSAGE_SELF) - cpu, 1)
    return out


def bench_local(uri: str, count: int, regions: int) -> dict[str, Any]:
    model = bench_model(regions * 2, 0, regions=regions)
    sim = SimDriver()
    sim.load(project(model))
    store = ZooKeeperStore(uri)
    c = Controller.open(store, sim, initial=lambda: model, workers=8).start()
    try:
        return _measured(c, model, store, count)
    finally:
        c.stop()
        store.close()


def bench_workers(uri: str, count: int, regions: int, workers: int, folder: Path) -> dict[str, Any]:
    model = bench_model(regions * 2, 0, regions=regions)
    devices = folder / "devices.db"
    sim = SharedSimDriver(devices)
    sim.load(project(model))
    client = open_client(uri)
    store = ZooKeeperStore(uri, client=client, physical_queue=True)
    executor = RemoteExecutor(client)
    c = Controller.open(store, sim, initial=lambda: model, executor=executor)
    executor.adopt(lambda txn: c.get(txn).settled)
    c.subscribe(executor.durable)
    c.start()
    argv = [*TROPIC, "worker", "--store", uri, "--driver", f"sim://{devices}", "--concurrency", "64"]
    logs = [(folder / f"w{i}.log").open("ab") for i in range(workers)]
    procs = [
        subprocess.Popen(
            [*argv, "--name", f"w{i}", "--log-level", "warning"],
            stdout=logs[i],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in range(workers)
    ]
    try:
        out = _measured(c, model, store, count)
        out["workers"] = workers
        out["consistent"] = bool(c.check()["consistent"])
        return out
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for i, p in enumerate(procs):
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                tail = (folder / f"w{i}.log").read_text(errors="replace")[-3000:]
                print(f"worker w{i} ignored SIGTERM for 60 s; killed. Its log:\n{tail}", file=sys.stderr)
            logs[i].close()
        c.stop()
        store.close()
        client.stop()
        client.close()
        sim.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--count", type=int, default=5000, help="transactions a round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measure; medians reported")
    parser.add_argument("--regions", type=int, default=200, help="regions (one storage host each)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--only", choices=["local", "workers"], help="run one measure")
    args = parser.parse_args(argv)
    install = find_zookeeper()
    if install is None:
        print("ZooKeeper is not installed: run scripts/install-zookeeper.sh", file=sys.stderr)
        return 2
    rounds: dict[str, list[dict[str, Any]]] = {"local": [], "workers": []}
    ensemble = ZooKeeperEnsemble(install=install, heap_mb=512)  # see MAX_ENTRY in tropic.store.zk
    with ensemble, tempfile.TemporaryDirectory() as tmp:
        ensemble.start_all(timeout=120)
        for r in range(args.rounds):
            if args.only in (None, "local"):
                rounds["local"].append(bench_local(ensemble.uri(f"/local-{r}"), args.count, args.regions))
            if args.only in (None, "workers"):
                folder = Path(tmp) / f"w{r}"
                folder.mkdir()
                uri = ensemble.uri(f"/workers-{r}")
                rounds["workers"].append(bench_workers(uri, args.count, args.regions, args.workers, folder))
    report: dict[str, Any] = {
        "benchmark": "zk_store",
        "ensemble": {"servers": 3, "address": "127.0.0.1 (loopback)", "force_sync": True, "heap_mb": 512},
        "count": args.count,
        "regions": args.regions,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    for name, rs in rounds.items():
        if rs:
            report[f"{name}_txn_per_s"] = round(statistics.median(x["txn_per_s"] for x in rs), 1)
            report[name] = rs
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("local", "workers"):
            if rounds[name]:
                print(
                    f"{name:8s} {report[f'{name}_txn_per_s']:>8,.1f} transactions/s (median of {args.rounds})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
