"""Service metrics: a consistent snapshot of the controller, and its Prometheus text exposition.

Counts are read on the controller's logical thread (one ``controller.call``), so a scrape sees one
instant. The latency histogram is fed by the controller's state-change listener when a transaction
becomes final. Each app has its own registry (several apps may live in one process, e.g. in tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tropic.api import listing
from tropic.records.record import Transaction
from tropic.records.states import State
from tropic.txn.controller import Controller

# Per-host series: at most this many hosts (in path order) get their own capacity series, so a scrape
# stays bounded (5 gauges x 1,000 hosts); regions are always all exported, and the number of hosts left
# out is itself a gauge. Wider fleets read per-host capacity from GET /v1/hosts.
MAX_HOST_SERIES = 1000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WAITING = (State.SUBMITTED, State.DEFERRED)
ON_DEVICES = (State.STARTED, State.ROLLING_BACK, State.KILLED)


@dataclass(frozen=True, slots=True)
class Snapshot:
    counters: dict[str, int]
    states: dict[str, int]
    model_version: int
    fenced: list[str]
    hosts: list[dict[str, object]]
    regions: list[dict[str, object]]
    hosts_dropped: int

    @property
    def queue_depth(self) -> int:
        return sum(self.states.get(s.value, 0) for s in WAITING)

    @property
    def in_flight(self) -> int:
        return sum(self.states.get(s.value, 0) for s in ON_DEVICES)

    @staticmethod
    def take(controller: Controller) -> Snapshot:
        def read() -> Snapshot:
            model = controller.model
            hosts = listing.list_hosts(model, limit=MAX_HOST_SERIES)
            regions = listing.list_regions(model)["items"]
            dropped = sum(int(r["hosts"]) for r in regions) - len(hosts["items"])
            return Snapshot(
                controller.counters.to_dict(),
                controller.states(),
                model.version,
                sorted(controller.fenced),
                hosts["items"],
                regions,
                max(0, dropped),
            )

        return controller.call(read)


class _ControllerCollector(Collector):
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        snap = Snapshot.take(self.controller)
        c = snap.counters
        by_state = GaugeMetricFamily("tropic_transactions", "Transactions by current state", labels=["state"])
        for s in State:
            by_state.add_metric([s.value], snap.states.get(s.value, 0))
        yield by_state
        yield CounterMetricFamily("tropic_transactions_submitted", "Transactions submitted", c["submitted"])
        finished = CounterMetricFamily(
            "tropic_transactions_finished", "Transactions that reached a final state", labels=["outcome"]
        )
        for outcome in ("committed", "aborted", "failed"):
            finished.add_metric([outcome], c[outcome])
        yield finished
        yield CounterMetricFamily("tropic_transactions_killed", "Transactions killed", c["killed"])
        yield CounterMetricFamily(
            "tropic_deferrals",
            "Deferrals on lock conflicts (a transaction deferred twice counts twice)",
            c["deferred"],
        )
        yield CounterMetricFamily(
            "tropic_rollbacks", "Transactions rolled back cleanly after a failed step", c["rolled_back"]
        )
        yield GaugeMetricFamily(
            "tropic_queue_depth", "Transactions waiting (SUBMITTED or DEFERRED)", snap.queue_depth
        )
        yield GaugeMetricFamily(
            "tropic_in_flight",
            "Transactions running on the devices (STARTED, ROLLING_BACK, KILLED)",
            snap.in_flight,
        )
        yield GaugeMetricFamily(
            "tropic_fenced_resources", "Resources fenced until repaired", len(snap.fenced)
        )
        yield GaugeMetricFamily("tropic_model_version", "Version of the logical model", snap.model_version)
        yield from _capacity("host", snap.hosts, "path")
        yield from _capacity("region", snap.regions, "name")
        yield GaugeMetricFamily(
            "tropic_host_series_dropped",
            f"Hosts without per-host capacity series (only the first {MAX_HOST_SERIES} have them)",
            snap.hosts_dropped,
        )


CAPACITY_GAUGES = (
    ("vcpus_used", "vCPUs of the VMs placed on the {0}"),
    ("vcpus_free", "vCPUs still placeable on the {0} (CPUs x overcommit - used)"),
    ("memory_used_mib", "MiB of memory of the VMs placed on the {0}"),
    ("memory_free_mib", "MiB of memory still free on the {0}"),
    ("vms", "VMs placed on the {0}"),
)


def _capacity(what: str, rows: list[dict[str, object]], key: str) -> Iterator[Metric]:
    for field, doc in CAPACITY_GAUGES:
        gauge = GaugeMetricFamily(f"tropic_{what}_{field}", doc.format(what), labels=[what])
        for row in rows:
            value = row[field]
            assert isinstance(value, int | float)
            gauge.add_metric([str(row[key])], float(value))
        yield gauge


class Metrics:
    """The Prometheus registry of one app."""

    def __init__(self, controller: Controller) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ControllerCollector(controller))
        self.latency = Histogram(
            "tropic_transaction_latency_seconds",
            "Submitted to final state, by final state",
            labelnames=["state"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, t: Transaction) -> None:
        """Called on the controller's logical thread for every state change: cheap, never blocks."""
        if not t.final:
            return
        latency = t.latency_s
        if latency is not None:
            self.latency.labels(t.state.value).observe(max(0.0, latency))

    def render(self) -> bytes:
        return generate_latest(self.registry)
