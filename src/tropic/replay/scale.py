"""Datacenter-scale benchmark: build a logical model of H hosts and V VMs (each VM with its volume on a
SAN), open a durable controller on it, and compare transaction throughput and latency with a 1K-VM model
of the same density, in the same process and with the same transactions. Both controllers stay open and
the throughput rounds alternate between them, so that the shared machine's changing load is spread over
both sides; the ratio compares the medians.

The model is written straight into the node table (the way a store restores it), not through
transactions. After each build the collector freezes what exists: millions of long-lived model nodes
would otherwise be traversed by every full collection during the run (``freeze_gc=False`` shows that).
Devices exist only for the hosts the transactions touch: the model, not the simulated devices, is what
grows.
"""

from __future__ import annotations

import gc
import math
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tropic.drivers.sim import SimDriver
from tropic.errors import InvalidArguments
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
    Volume,
)
from tropic.replay.metrics import latency_figures, memory_status
from tropic.scenario.bench import spawn_args
from tropic.store.base import MemoryStore, Store
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State, Transaction

HOSTS_PER_REGION = 32_768
HOST_CPUS = 64
HOST_MEMORY_MIB = 512 * 1024
VM_VCPUS = 2
VM_MEMORY_MIB = 4096


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    hosts: int = 225_000
    vms: int = 1_800_000
    baseline_vms: int = 1_000
    txns: int = 5_000  # spawns in all throughput rounds together (as fast as possible)
    rounds: int = 5  # throughput rounds per model, alternating between the two models
    latency_txns: int = 2_000  # spawns per latency phase (paced)
    rate: float = 500.0  # offered txn/s of the latency phase
    durable: bool = True
    workers: int = 4
    freeze_gc: bool = True

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.vms < 0 or self.baseline_vms < 1:
            raise InvalidArguments("hosts and baseline VMs must be at least 1, VMs not negative")
        if self.txns < 1 or self.latency_txns < 1 or not self.rate > 0 or self.rounds < 1:
            raise InvalidArguments("txns, latency_txns, rate and rounds must be positive")


def region_of(host: int) -> str:
    return f"r{host // HOSTS_PER_REGION}"


def host_path(host: int) -> str:
    return f"/compute/{region_of(host)}/h{host}"


def build_scale_model(hosts: int, vms: int) -> Model:
    """``hosts`` hosts in regions of up to 32,768, and ``vms`` running VMs spread evenly over them, each
    with its exported volume on its region's SAN (cloned from the region's image) and imported on its
    host: the state ``vms`` committed spawns would leave."""
    if hosts < 1 or vms < 0:
        raise InvalidArguments(f"need at least one host and no negative VM count, got {hosts}, {vms}")
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    regions = math.ceil(hosts / HOSTS_PER_REGION)
    images = []
    for r in range(regions):
        m.add(f"/compute/r{r}", Region, location=f"r{r}")
        m.add(f"/storage/r{r}", Region, location=f"r{r}")
        m.add(f"/storage/r{r}/san-1", StorageHost, capacity_gib=10**9)
        images.append(m.add(f"/storage/r{r}/san-1/img", Image))
    nodes, kids = m.nodes, m.kids
    host_attrs = Host.initial_attrs({"cpus": HOST_CPUS, "memory_mib": HOST_MEMORY_MIB}, "/compute/r0/h0")
    vm_attrs = VM.initial_attrs(
        {"vcpus": VM_VCPUS, "memory_mib": VM_MEMORY_MIB, "image": images[0], "volume": ""}, "/compute/r0/h0/x"
    )
    vol_attrs = Volume.initial_attrs({"image": images[0], "exported": True}, "/storage/r0/san-1/x")
    per_host, extra = divmod(vms, hosts)
    first = 0
    for h in range(hosts):
        region = region_of(h)
        path = f"/compute/{region}/h{h}"
        san = f"/storage/{region}/san-1"
        image = images[h // HOSTS_PER_REGION]
        count = per_host + (1 if h < extra else 0)
        names = [f"vm{i}" for i in range(first, first + count)]
        first += count
        volumes = [f"{san}/vol-{n}" for n in names]
        nodes[path] = Node("host", {**host_attrs, "configs": names, "volumes": volumes})
        kids.setdefault(f"/compute/{region}", set()).add(f"h{h}")
        if not names:
            continue
        kids[path] = set(names)
        san_kids = kids.setdefault(san, set())
        for name, volume in zip(names, volumes, strict=True):
            nodes[f"{path}/{name}"] = Node("vm", {**vm_attrs, "image": image, "volume": volume})
            nodes[volume] = Node("volume", {**vol_attrs, "image": image})
            san_kids.add(f"vol-{name}")
    return m


@dataclass(frozen=True, slots=True)
class _Phase:
    throughput_txn_s: float
    committed: int
    elapsed_s: float
    latency_ms: dict[str, float]


def run_scale_bench(spec: ScaleSpec, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the baseline model and the big one, open a controller on each, and measure both side by
    side: ``spec.rounds`` throughput rounds alternate between them (so a change in the machine's load
    hits both alike) and ``ratio`` compares their medians; then one paced latency phase each."""
    density = spec.vms / spec.hosts if spec.vms else 8.0
    base_hosts = max(1, math.ceil(spec.baseline_vms / density))
    # The same transactions on both models: spawns over as many hosts as the baseline has.
    targets = base_hosts
    say = progress or (lambda _message: None)
    per_round = max(1, spec.txns // spec.rounds)
    with tempfile.TemporaryDirectory(prefix="tropic-scale-") as tmp:
        say(f"baseline: {base_hosts} hosts, {spec.baseline_vms} VMs")
        base = _Opened.build(base_hosts, spec.baseline_vms, targets, spec, Path(tmp) / "baseline.db")
        try:
            say(f"scale: {spec.hosts} hosts, {spec.vms} VMs")
            big = _Opened.build(spec.hosts, spec.vms, targets, spec, Path(tmp) / "scale.db")
            try:
                for r in range(spec.rounds):
                    say(f"throughput round {r + 1} of {spec.rounds}")
                    pair = (base, big) if r % 2 == 0 else (big, base)
                    for side in pair:
                        side.rounds.append(_spawns(side.c, side.paths, f"f{r}-", per_round, None))
                say("paced latency")
                for side in (base, big):
                    side.paced = _spawns(side.c, side.paths, "p", spec.latency_txns, spec.rate)
            finally:
                big.close()
        finally:
            base.close()
        baseline, scale = base.figures(), big.figures()
    _release(spec)
    ratio = scale["throughput_txn_s"] / baseline["throughput_txn_s"] if baseline["throughput_txn_s"] else None
    pairs = [
        b.throughput_txn_s / a.throughput_txn_s
        for a, b in zip(base.rounds, big.rounds, strict=True)
        if a.throughput_txn_s
    ]
    p50_ratio = (
        scale["paced_latency_ms"]["p50"] / baseline["paced_latency_ms"]["p50"]
        if baseline["paced_latency_ms"]["p50"]
        else None
    )
    return {
        "hosts": spec.hosts,
        "vms": spec.vms,
        "durable": spec.durable,
        "workers": spec.workers,
        "freeze_gc": spec.freeze_gc,
        "txns": per_round * spec.rounds,
        "rounds": spec.rounds,
        "paced_rate_txn_s": spec.rate,
        "target_hosts": targets,
        "scale": scale,
        "baseline": baseline,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "round_ratios": [round(x, 3) for x in pairs],
        "p50_ratio": round(p50_ratio, 3) if p50_ratio is not None else None,
        "peak_rss_gib": memory_status()["peak_rss_gib"],
    }


def _release(spec: ScaleSpec) -> None:
    """Hand the models back to the collector (they were frozen after their build)."""
    if spec.freeze_gc:
        gc.unfreeze()
    gc.collect()


@dataclass
class _Opened:
    """One model with its controller open on a store, and what was measured on it."""

    c: Controller
    store: Store
    paths: list[str]
    load: dict[str, Any]
    rounds: list[_Phase]
    paced: _Phase | None = None

    @staticmethod
    def build(hosts: int, vms: int, targets: int, spec: ScaleSpec, db: Path) -> _Opened:
        gc.collect()
        before = memory_status()["rss_gib"]
        t0 = time.perf_counter()
        model = build_scale_model(hosts, vms)
        build_s = time.perf_counter() - t0
        if spec.freeze_gc:
            gc.freeze()
        built = memory_status()["rss_gib"]
        stride = max(1, hosts // targets)
        paths = [host_path(i * stride) for i in range(targets)]
        sim = SimDriver()
        sim.hosts = {p: {"vms": {}, "configs": set(), "volumes": set()} for p in paths}
        sim.sans = {
            f"/storage/r{r}/san-1": {"images": {"img"}, "volumes": {}}
            for r in range(math.ceil(hosts / HOSTS_PER_REGION))
        }
        store: Store = SQLiteStore(db) if spec.durable else MemoryStore()
        t1 = time.perf_counter()
        c = Controller.open(store, sim, initial=lambda: model, workers=spec.workers)
        if isinstance(store, SQLiteStore):
            _checkpoint(store.path)
        store_s = time.perf_counter() - t1
        c.start()
        load = {
            "hosts": hosts,
            "vms": vms,
            "resources": len(model.nodes),
            "build_s": round(build_s, 3),
            "store_init_s": round(store_s, 3),
            "load_s": round(build_s + store_s, 3),
            "model_rss_gib": round(built - before, 3),
            "rss_gib": built,
        }
        return _Opened(c, store, paths, load, [])

    def close(self) -> None:
        try:
            self.c.stop()
        finally:
            self.store.close()

    def figures(self) -> dict[str, Any]:
        throughputs = [r.throughput_txn_s for r in self.rounds]
        paced = self.paced
        return {
            **self.load,
            "throughput_txn_s": round(statistics.median(throughputs), 1) if throughputs else 0.0,
            "round_throughputs_txn_s": throughputs,
            "committed": sum(r.committed for r in self.rounds) + (paced.committed if paced else 0),
            "latency_ms": self.rounds[-1].latency_ms if self.rounds else {},
            "paced_latency_ms": paced.latency_ms if paced else {},
        }


def _checkpoint(path: Path) -> None:
    """Move the initial load from the write-ahead log into the database file, as part of loading: left in
    the WAL, it is copied back by the first automatic checkpoint, in the middle of the measured run."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _spawns(c: Controller, hosts: list[str], prefix: str, count: int, rate: float | None) -> _Phase:
    """Submit ``count`` spawns round-robin over ``hosts`` (at ``rate``/s, or at once), wait for all."""
    txns: list[Transaction] = []
    start = time.perf_counter()
    for i in range(count):
        host = hosts[i % len(hosts)]
        if rate is not None:
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
        txns.append(c.submit("spawn_vm", spawn_args(host, f"{prefix}{i}", memory_mib=512), submitter="scale"))
    c.drain(600)
    elapsed = time.perf_counter() - start
    lat = np.array([t.latency_s for t in txns if t.state is State.COMMITTED and t.latency_s is not None])
    committed = int(lat.size)
    figures = latency_figures(lat)
    return _Phase(round(committed / elapsed, 1), committed, round(elapsed, 3), figures)
