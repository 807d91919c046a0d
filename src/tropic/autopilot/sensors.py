"""Sensors: what the autopilot reads each pass, as timestamped observations
(:class:`~tropic.autopilot.base.Observation`).

* :class:`UtilisationSensor` reads every compute host of the model and its VMs through the driver
  (:meth:`tropic.drivers.base.Driver.stats`: the sim plays a trace, libvirt reads domain and node
  counters, the router asks each backend): ``cpu`` and ``memory`` per VM and per host (fractions 0..1).
  Counters become rates between two readings, so a host's first libvirt reading yields no CPU figure yet.
* :class:`DemandSensor`, :class:`LatencySensor`, :class:`PriceSensor`: the per-region inputs of placement
  policies (``region:<r>`` ``demand``, ``latency:<a>-><b>`` ``latency_ms``, ``region:<r>`` ``price``).

Failures are visible, never 0%: a sensor that cannot read a subject reports nothing for it (its series
goes stale, and the predictor says so), and keeps the error in :attr:`UtilisationSensor.errors`. Time is
the caller's (``now``), so tests and replays drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from tropic.autopilot.base import CPU, MEMORY, Observation
from tropic.autopilot.regional import DemandSeries
from tropic.drivers.base import Driver, Stats
from tropic.errors import ConfigError, TropicError
from tropic.model import Model

log = logging.getLogger(__name__)

DEMAND = "demand"
LATENCY_MS = "latency_ms"
PRICE = "price"


class Sensor(Protocol):
    """A source of observations; ``read`` returns what it could read at ``now`` (possibly nothing)."""

    name: str

    def read(self, now: float) -> list[Observation]: ...


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


class UtilisationSensor:
    """CPU and memory of the model's compute hosts and their VMs, through ``driver``. ``fleet`` returns the
    committed model (read only: host paths, CPUs and memory)."""

    name = "utilisation"

    def __init__(self, driver: Driver, fleet: Callable[[], Model]) -> None:
        self.driver = driver
        self.fleet = fleet
        self.errors: list[str] = []  # the last read's failures (empty when it read everything it tried)
        self._last: Stats = {}  # the previous reading of each path (for counters)

    def read(self, now: float) -> list[Observation]:
        self.errors = []
        model = self.fleet()
        hosts = {p: n.attrs for p, n in model.nodes.items() if n.kind == "host"}
        try:
            stats = self.driver.stats(sorted(hosts), now)
        except TropicError as e:
            self.errors.append(f"{self.driver.name}: {e}")
            log.warning("utilisation sensor: %s", e)
            return []
        out: list[Observation] = []
        # VMs first: a host whose device gives no CPU figure of its own gets its VMs' demand.
        cores: dict[str, float | None] = {}
        for path, m in sorted(stats.items()):
            if path in hosts:
                continue
            obs = self._vm(path, m, self._last.get(path), now)
            out += obs
            host = path.rsplit("/", 1)[0]
            cpu = next((o.value for o in obs if o.metric == CPU), None)
            known = cores.get(host, 0.0)
            cores[host] = None if cpu is None or known is None else known + cpu * m.get("vcpus", 1.0)
        for path, m in sorted(stats.items()):
            attrs = hosts.get(path)
            if attrs is None:
                continue
            cpus, memory_mib = int(attrs.get("cpus", 0)), int(attrs.get("memory_mib", 0))
            if "demand_cores" not in m and "cpu" not in m and cores.get(path, 0.0) is not None:
                m = {**m, "vms_cores": cores.get(path) or 0.0}
            out += self._host(path, m, self._last.get(path), cpus, memory_mib, now)
        unread = sorted(set(hosts) - set(stats))
        if unread:
            self.errors.append(f"no reading of {len(unread)} host(s): {', '.join(unread[:5])}")
        # Keep the previous reading of what this read missed (the next one still has a counter to compare
        # with); forget what left the model.
        self._last = {
            p: v for p, v in {**self._last, **stats}.items() if p in hosts or p.rsplit("/", 1)[0] in hosts
        }
        return out

    def _vm(
        self, path: str, m: Mapping[str, float], prev: Mapping[str, float] | None, now: float
    ) -> list[Observation]:
        out = []
        cpu = m.get("cpu")
        if cpu is None and prev is not None:
            cpu = _rate(m, prev, "cpu_time_s", "wall_s", per=m.get("vcpus", 1.0))
        if cpu is not None:
            out.append(Observation(path, CPU, _clamp(cpu), now, self.name))
        if "memory" in m:
            out.append(Observation(path, MEMORY, _clamp(m["memory"]), now, self.name))
        return out

    def _host(
        self,
        path: str,
        m: Mapping[str, float],
        prev: Mapping[str, float] | None,
        cpus: int,
        memory_mib: int,
        now: float,
    ) -> list[Observation]:
        out = []
        cpu = m.get("cpu")
        if cpu is None and "demand_cores" in m and cpus > 0:
            cpu = m["demand_cores"] / cpus
        if cpu is None and prev is not None:
            cpu = _rate(m, prev, "cpu_busy_s", "cpu_total_s")
        if cpu is None and "vms_cores" in m and cpus > 0:
            cpu = m["vms_cores"] / cpus  # every VM on it was read: their demand over its CPUs
        if cpu is not None:
            out.append(Observation(path, CPU, _clamp(cpu), now, self.name))
        memory = m.get("memory")
        if memory is None and "memory_used_mib" in m and memory_mib > 0:
            memory = m["memory_used_mib"] / memory_mib
        if memory is None and "memory_free_mib" in m and m.get("memory_mib", 0) > 0:
            memory = 1.0 - m["memory_free_mib"] / m["memory_mib"]
        if memory is not None:
            out.append(Observation(path, MEMORY, _clamp(memory), now, self.name))
        return out


def _rate(
    m: Mapping[str, float], prev: Mapping[str, float], counter: str, clock: str, per: float = 1.0
) -> float | None:
    """The counter's increase over the clock's between two readings (per ``per`` units), or None when
    either reading lacks them, time did not move or the counter went back (the domain restarted)."""
    if counter not in m or counter not in prev or clock not in m or clock not in prev:
        return None
    dc, dt = m[counter] - prev[counter], m[clock] - prev[clock]
    if dt <= 0 or dc < 0 or per <= 0:
        return None
    return dc / dt / per


class DemandSensor:
    """Client demand per region from a :class:`~tropic.autopilot.regional.DemandSeries`: ``regions`` maps
    each tropic region to its key in the series (default: the same name); the day starts at ``start``
    (Unix seconds of 00:00 UTC; default the epoch, so real time reads the real hour) and plays ``speed``
    times faster than the clock."""

    name = "demand"

    def __init__(
        self,
        series: DemandSeries,
        *,
        regions: Mapping[str, str] | None = None,
        start: float = 0.0,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ConfigError(f"demand speed must be positive, not {speed}")
        self.series = series
        self.regions = dict(regions) if regions is not None else {k: k for k in series.hourly}
        unknown = sorted(k for k in self.regions.values() if k not in series.hourly)
        if unknown:
            raise ConfigError(
                f"{series.source}: no demand for {', '.join(unknown)} "
                f"(known: {', '.join(sorted(series.hourly))})"
            )
        self.start = start
        self.speed = speed

    def read(self, now: float) -> list[Observation]:
        hour = (now - self.start) * self.speed / 3600.0
        out = []
        for region, key in sorted(self.regions.items()):
            value = self.series.at(key, hour)
            if value is not None:
                out.append(Observation(f"region:{region}", DEMAND, value, now, self.name))
        return out


class LatencySensor:
    """Inter-region round trips (a matrix from :func:`~tropic.autopilot.regional.load_latency`), as
    ``latency:<a>-><b>``; ``regions`` restricts it to the regions that matter."""

    name = "latency"

    def __init__(self, matrix: Mapping[tuple[str, str], float], *, regions: list[str] | None = None) -> None:
        keep = set(regions) if regions is not None else None
        self.matrix = {k: v for k, v in matrix.items() if keep is None or (k[0] in keep and k[1] in keep)}

    def read(self, now: float) -> list[Observation]:
        return [
            Observation(f"latency:{a}->{b}", LATENCY_MS, ms, now, self.name)
            for (a, b), ms in sorted(self.matrix.items())
        ]


class PriceSensor:
    """Price per region from configuration (:func:`~tropic.autopilot.regional.load_prices`)."""

    name = "price"

    def __init__(self, prices: Mapping[str, float]) -> None:
        self.prices = dict(prices)

    def read(self, now: float) -> list[Observation]:
        return [Observation(f"region:{r}", PRICE, p, now, self.name) for r, p in sorted(self.prices.items())]


def read_all(sensors: list[Sensor], now: float) -> tuple[list[Observation], dict[str, str]]:
    """Every sensor's readings, and the sensors that failed outright (name -> why); one sensor failing
    leaves the others' readings in."""
    out: list[Observation] = []
    failed: dict[str, str] = {}
    for s in sensors:
        try:
            out += s.read(now)
        except TropicError as e:
            failed[s.name] = str(e)
            log.warning("sensor %s failed: %s", s.name, e)
    return out, failed
