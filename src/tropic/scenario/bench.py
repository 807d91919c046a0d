"""Throughput and latency benchmarks of the embedded engine (durable SQLite store, zero-latency sim)."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tropic.drivers.sim import SimDriver
from tropic.model import (
    STANDARD,
    VM,
    ComputeRoot,
    Host,
    Image,
    Model,
    Node,
    Region,
    StorageHost,
    StorageRoot,
    Value,
)
from tropic.store.base import MemoryStore, Store
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State, Transaction


@dataclass(frozen=True, slots=True)
class BenchSpec:
    count: int = 5000
    hosts: int = 2500
    preload_vms: int = 0  # VMs already in the model (scale comparison)
    rate: float | None = None  # offered load in txn/s (None: as fast as possible)
    durable: bool = True
    workers: int = 4


VMS_PER_BACKGROUND_HOST = 8  # TROPIC's evaluation density (1.8M VMs on 225K hosts)


def bench_model(hosts: int, preload_vms: int, regions: int = 4) -> Model:
    """``hosts`` empty, roomy hosts (the spawn targets) plus ``preload_vms`` VMs on background hosts, eight
    per host, so the model grows while the hosts that transactions touch stay the same."""
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    per_region = max(1, hosts // regions)
    for r in range(regions):
        region = f"r{r}"
        m.add(f"/compute/{region}", Region)
        m.add(f"/storage/{region}", Region)
        m.add(f"/storage/{region}/san-1", StorageHost)
        m.add(f"/storage/{region}/san-1/img", Image)
        for h in range(per_region):
            m.add(f"/compute/{region}/h{h}", Host, cpus=10**6, memory_mib=10**9)
    # Background VMs are written straight into the node table (no volumes: they only add model size).
    nodes, kids = m.nodes, m.kids
    background = (preload_vms + VMS_PER_BACKGROUND_HOST - 1) // VMS_PER_BACKGROUND_HOST
    for b in range(background):
        region = f"r{b % regions}"
        host = f"/compute/{region}/bg{b}"
        first = b * VMS_PER_BACKGROUND_HOST
        names = [f"pre{i}" for i in range(first, min(preload_vms, first + VMS_PER_BACKGROUND_HOST))]
        m.add(host, Host, cpus=64, memory_mib=262144, configs=names)
        for name in names:
            nodes[f"{host}/{name}"] = Node(
                VM.kind, {"vcpus": 1, "memory_mib": 512, "image": "", "volume": "", "state": "running"}
            )
        kids[host] = set(names)
    return m


def spawn_args(host: str, name: str, *, memory_mib: int = 256) -> dict[str, Value]:
    """The arguments of a one-vCPU ``spawn_vm`` on ``host`` from its region's ``san-1/img`` image (the
    benchmark models' layout: ``/compute/<region>/<host>``, ``/storage/<region>/san-1``)."""
    region = host.split("/")[2]
    return {
        "host": host,
        "name": name,
        "image": f"/storage/{region}/san-1/img",
        "vcpus": 1,
        "memory_mib": memory_mib,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def run_txn_bench(spec: BenchSpec, workdir: Path | None = None) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    folder = Path(tmp.name) if tmp is not None else workdir
    assert folder is not None
    try:
        t0 = time.perf_counter()
        model = bench_model(spec.hosts, spec.preload_vms)
        build_s = time.perf_counter() - t0
        sim = SimDriver()
        sim.hosts = {  # devices only for the hosts transactions touch
            p: {"vms": {}, "configs": set(), "volumes": set()}
            for p, n in model.nodes.items()
            if n.kind == "host" and "/bg" not in p
        }
        sim.sans = {
            p: {"images": {"img"}, "volumes": {}} for p, n in model.nodes.items() if n.kind == "storage_host"
        }
        store: Store = SQLiteStore(folder / "bench.db") if spec.durable else MemoryStore()
        t1 = time.perf_counter()
        c = Controller.open(store, sim, initial=lambda: model, workers=spec.workers)
        init_s = time.perf_counter() - t1
        hosts = [p for p, n in model.nodes.items() if n.kind == "host" and "/bg" not in p]
        c.start()
        txns: list[Transaction] = []
        start = time.perf_counter()
        interval = None if spec.rate is None else 1.0 / spec.rate
        for i in range(spec.count):
            args = spawn_args(hosts[i % len(hosts)], f"b{i}")
            if interval is not None:
                due = start + i * interval
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
            txns.append(c.submit("spawn_vm", args, submitter="bench"))
        submit_s = time.perf_counter() - start
        c.drain(600)
        elapsed = time.perf_counter() - start
        c.stop()
        lat = [t.latency_s * 1000 for t in txns if t.latency_s is not None]
        commits = getattr(store, "commits", 0)
        store.close()
        committed = sum(t.state is State.COMMITTED for t in txns)
        return {
            "count": spec.count,
            "committed": committed,
            "throughput_txn_s": round(committed / elapsed, 1),
            "offered_txn_s": None if spec.rate is None else spec.rate,
            "latency_ms": {
                "p50": round(percentile(lat, 50), 3),
                "p99": round(percentile(lat, 99), 3),
                "mean": round(statistics.fmean(lat), 3) if lat else 0.0,
            },
            "elapsed_s": round(elapsed, 3),
            "submit_s": round(submit_s, 3),
            "durable": spec.durable,
            "store_commits": commits,
            "txn_per_commit": round(spec.count / commits, 1) if commits else None,
            "model_resources": len(model.nodes),
            "preload_vms": spec.preload_vms,
            "model_build_s": round(build_s, 3),
            "store_init_s": round(init_s, 3),
        }
    finally:
        if tmp is not None:
            tmp.cleanup()
