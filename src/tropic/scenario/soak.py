"""The long-run benchmark (``tropic bench soak``): a constant mix of spawn, migrate, resize and destroy on
the embedded engine, for as many transactions as asked, measuring throughput and resident memory per slice
of the run. The model's size stays constant, so anything that grows is the controller's history.

Each of ``slots`` VM slots cycles spawn -> migrate -> resize -> destroy (a new VM name each cycle); the
slots are taken round robin and a slot's next transaction is submitted only once its previous one is
settled, so at most ``slots`` transactions are in flight and the submitter holds no history either.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tropic.drivers.sim import SimDriver
from tropic.errors import InvalidArguments
from tropic.model import Model, Value
from tropic.records.record import Transaction
from tropic.records.states import State
from tropic.retention import Archive, Retention, RetentionThread
from tropic.scenario.bench import bench_model, spawn_args
from tropic.store.base import Store
from tropic.store.registry import open_store, parse_store_uri
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller

if TYPE_CHECKING:
    from tropic.store.zk import ZooKeeperStore

SPAWN, MIGRATE, RESIZE, DESTROY = range(4)
OPS = ("spawn_vm", "migrate_vm", "resize_vm", "destroy_vm")
WARMUP_TXNS = 100_000  # RSS growth is measured after this many transactions (or a tenth of a shorter run)


@dataclass(frozen=True, slots=True)
class SoakSpec:
    txns: int = 100_000
    store: str | None = None  # a store URI (None: a SQLite file in a temporary folder)
    hosts: int = 400
    slots: int = 800  # VM slots cycling spawn/migrate/resize/destroy (at most this many in flight)
    slices: int = 20
    workers: int = 4
    retain: Retention | None = None  # passes in a retention thread, as a service runs them
    archive: Path | None = None  # its archive folder (default: beside a SQLite store; zk://: required)
    retain_interval: float = 10.0  # seconds between two passes (a service's --retain-interval)

    def __post_init__(self) -> None:
        if self.txns < 1 or self.hosts < 8 or self.slots < 1 or self.slices < 1 or self.workers < 1:
            raise InvalidArguments("txns, slots, slices and workers must be positive, hosts at least 8")
        if not self.retain_interval > 0:
            raise InvalidArguments(f"retain_interval must be positive seconds, not {self.retain_interval}")


@dataclass(slots=True)
class _Slot:
    """One VM slot: where its VM is, which step of the cycle comes next, and its last transaction."""

    host: str
    index: int
    op: int = SPAWN
    generation: int = 0
    last: Transaction | None = None

    @property
    def name(self) -> str:
        return f"s{self.index}-g{self.generation}"


@dataclass(slots=True)
class _Slices:
    """Figures per slice of the run: transactions, seconds, RSS at its end."""

    size: int
    extra: Callable[[], dict[str, float]] | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter)
    _cpu0: float = field(default_factory=time.process_time)
    _base: int = 0

    def restart(self, done: int) -> None:
        """Start the slice's clocks again, ``done`` transactions in."""
        self._t0, self._cpu0, self._base = time.perf_counter(), time.process_time(), done

    def close(self, done: int) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        rss = rss_mib()
        n = done - self._base
        self.rows.append(
            {
                "txns_done": done,
                "seconds": round(now - self._t0, 3),
                "throughput_txn_s": round(n / (now - self._t0), 1) if now > self._t0 else 0.0,
                "cpu_ms_per_txn": round((cpu - self._cpu0) * 1000 / n, 4),
                "rss_mib": round(rss, 1),
                **(self.extra() if self.extra is not None else {}),
            }
        )
        self.restart(done)


def run_soak(
    spec: SoakSpec,
    *,
    progress: Callable[[str], None] | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Run ``spec.txns`` transactions of the mix on a fresh store and report the figures per slice
    (``probe``: more figures to add to each slice, e.g. a ZooKeeper ensemble's znode count)."""
    say = progress or (lambda _message: None)
    tmp = tempfile.TemporaryDirectory(prefix="tropic-soak-") if spec.store is None else None
    uri = spec.store if spec.store is not None else f"sqlite:///{Path(tmp.name) / 'soak.db'}"  # type: ignore[union-attr]
    try:
        store = open_store(uri)
        try:
            return _run(spec, store, uri, say, probe)
        finally:
            store.close()
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run(
    spec: SoakSpec,
    store: Store,
    uri: str,
    say: Callable[[str], None],
    probe: Callable[[], dict[str, float]] | None,
) -> dict[str, Any]:
    model = bench_model(spec.hosts, 0)
    hosts = [p for p, n in model.nodes.items() if n.kind == "host"]
    sim = SimDriver()
    sim.hosts = {p: {"vms": {}, "configs": set(), "volumes": set()} for p in hosts}
    sim.sans = {
        p: {"images": {"img"}, "volumes": {}} for p, n in model.nodes.items() if n.kind == "storage_host"
    }
    fresh: list[bool] = []

    def initial() -> Model:
        fresh.append(True)
        return model

    archive: Archive | None = None
    if spec.retain is not None:
        parsed = parse_store_uri(uri)
        where = parsed.path
        if isinstance(store, SQLiteStore) and where is not None:
            archive = Archive(spec.archive or where.with_name(where.name + ".archive"))
            store.archive = archive
        elif parsed.scheme == "zk" and spec.archive is not None:
            archive = Archive(spec.archive)  # a ZooKeeper store (tropic.retention.zk)
            store.archive = archive  # type: ignore[attr-defined]
        else:
            raise InvalidArguments("--retain needs a sqlite:// store, or a zk:// store and an archive folder")
        archive.check()
    c = Controller.open(store, sim, initial=initial, workers=spec.workers)
    if not fresh:
        raise InvalidArguments(f"store {uri} is not empty: the soak needs a fresh store")
    by_region: dict[str, list[str]] = {}
    for h in hosts:
        by_region.setdefault(h.split("/")[2], []).append(h)
    slots = [_Slot(hosts[i % len(hosts)], i) for i in range(spec.slots)]
    size = max(1, spec.txns // spec.slices)
    warmup = min(WARMUP_TXNS, spec.txns // 10)

    def per_slice() -> dict[str, float]:
        size_now = store_bytes(uri)
        out: dict[str, float] = {} if size_now is None else {"store_bytes": size_now}
        out.update(probe() if probe is not None else {})
        return out

    slices = _Slices(size, per_slice)
    lead = min(spec.slots, size // 2)  # the first slice is timed from then on
    rss_start = rss_mib()
    rss_warm: float | None = None
    counts = {name: 0 for name in OPS}
    states: dict[str, int] = {}
    c.start()
    retention: RetentionThread | None = None
    if archive is not None and spec.retain is not None:
        # The same thread a service runs (tropic.retention.runner): passes run beside the controller,
        # and their CPU counts in the slices they fall in.
        retention = RetentionThread(_retained(store), archive, spec.retain, interval=spec.retain_interval)
        retention.start()
    try:
        for i in range(spec.txns):
            slot = slots[i % len(slots)]
            if slot.last is not None:
                _settle(c, slot, states)
            name, args = _next(slot, by_region, i)
            counts[name] += 1
            slot.last = c.submit(name, args, submitter="soak")
            done = i + 1
            if done == lead:
                slices.restart(done)  # (the first ``slots`` submissions wait for nothing: not a rate)
            if done % size == 0:
                slices.close(done)
                say(f"{done:,} of {spec.txns:,} transactions")
            if done == warmup:
                rss_warm = rss_mib()
        c.drain(600)
        for slot in slots:
            if slot.last is not None:
                _settle(c, slot, states)
        if retention is not None:
            # One last pass, once everything is final and out of the timed slices, so the store ends
            # within the policy whatever the interval.
            retention.stop()
            retention.run_pass()
    finally:
        if retention is not None:
            retention.stop()
        c.stop()
    rows = slices.rows
    gc.collect()
    rss_end = rss_mib()
    first, last = rows[0]["throughput_txn_s"], rows[-1]["throughput_txn_s"]
    cpu_first, cpu_last = rows[0]["cpu_ms_per_txn"], rows[-1]["cpu_ms_per_txn"]
    return {
        "txns": spec.txns,
        "store": uri,
        "hosts": spec.hosts,
        "slots": spec.slots,
        "workers": spec.workers,
        "mix": counts,
        "states": states,
        "slice_txns": size,
        "slices": rows,
        "throughput_first_txn_s": first,
        "throughput_last_txn_s": last,
        "throughput_last_over_first": round(last / first, 3) if first else None,
        # CPU time per transaction is what a per-transaction cost growing with history would show first,
        # and it is less disturbed than the wall clock by other work on a shared machine.
        "cpu_ms_per_txn_first": cpu_first,
        "cpu_ms_per_txn_last": cpu_last,
        "cpu_last_over_first": round(cpu_last / cpu_first, 3) if cpu_first else None,
        "warmup_txns": warmup,
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_mib": round(rss_end - (rss_warm if rss_warm is not None else rss_start), 1),
        "store_bytes": store_bytes(uri),
        "retained_removed": retention.removed if retention is not None else None,
        "retention_passes": retention.passes if retention is not None else None,
        "controller_live_records": len(c.live()),
    }


def _retained(store: Store) -> SQLiteStore | ZooKeeperStore:
    if isinstance(store, SQLiteStore):
        return store
    from tropic.store.zk import ZooKeeperStore

    assert isinstance(store, ZooKeeperStore)  # (run_soak refuses --retain on any other store)
    return store


def _settle(c: Controller, slot: _Slot, states: dict[str, int]) -> None:
    """Wait for the slot's last transaction and move the slot on (a transaction that did not commit is
    tried again)."""
    t = c.wait(slot.last, 600) if slot.last is not None else None
    slot.last = None
    if t is None:
        return
    states[t.state.value] = states.get(t.state.value, 0) + 1
    if t.state is not State.COMMITTED:
        return
    if slot.op == MIGRATE:
        slot.host = str(t.args["dest"])
    if slot.op == DESTROY:
        slot.generation += 1
    slot.op = (slot.op + 1) % len(OPS)


def _next(slot: _Slot, by_region: dict[str, list[str]], i: int) -> tuple[str, dict[str, Value]]:
    if slot.op == SPAWN:
        return "spawn_vm", spawn_args(slot.host, slot.name)
    vm = f"{slot.host}/{slot.name}"
    if slot.op == MIGRATE:
        peers = by_region[slot.host.split("/")[2]]
        step = 1 + i % max(1, min(7, len(peers) - 1))  # another host of the region, never the same one
        dest = peers[(peers.index(slot.host) + step) % len(peers)]
        return "migrate_vm", {"vm": vm, "dest": dest}
    if slot.op == RESIZE:
        return "resize_vm", {"vm": vm, "vcpus": 1 + i % 2, "memory_mib": 256 + 256 * (i % 2)}
    return "destroy_vm", {"vm": vm}


def rss_mib() -> float:
    """This process's resident memory in MiB, from /proc/self/status (0 where not available)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def store_bytes(uri: str) -> int | None:
    """Bytes on disk of an embedded store (its file and write-ahead log); None for other stores."""
    spec = parse_store_uri(uri)
    if spec.path is None:
        return None
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = spec.path.with_name(spec.path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total
