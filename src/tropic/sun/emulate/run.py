"""An emulated wide-area run: each strategy's day replayed, in compressed time, on a real ZooKeeper
ensemble behind the delay proxy, with real client processes measuring the latency they perceive, next
to the model's figure for the same steps.

Per emulated step of a strategy's day:

1. the placement of that step is mapped onto the ensemble: the member ZooKeeper elected (read with
   ``srvr``) takes the placement's leader region, the others its other regions, as few moving as possible
   (:func:`~tropic.sun.emulate.topology.assign_members`): the leader follows the sun because the leader
   member's region moves;
2. each member that moves is migrated: paused for the pre-copy model's downtime
   (:func:`tropic.geo.precopy.precopy`), its delays re-pointed to the new region, resumed; the leader is
   read again (a pause may cause an election, and the model always uses the actual leader);
3. every client region's process uses its nearest member and issues reads and writes for
   ``step_seconds`` at its demand rate scaled down (at least ``min_rps`` of each kind, so every region
   and kind is measured; the mean weighs each by its demand, so the floor does not bias it);
4. the step's measured mean (per region and kind, weighted by demand and the read fraction) is set next
   to the model's (:data:`tropic.sun.model.MODEL` on the actual placement, leader included).

A day's first step places the members without a pause (the strategy starts from its placement).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tropic.geo.precopy import precopy
from tropic.sun import model as sun_model
from tropic.sun.contract import Demand, LatencyMatrix, Placement, StrategyDay
from tropic.sun.emulate.clients import ClientProcess, StepSample
from tropic.sun.emulate.topology import assign_members
from tropic.sun.emulate.wide_area import WideArea

__all__ = ["EmulateOptions", "EmulationReport", "StepFigures", "StrategyRun", "run"]


@dataclass(frozen=True, slots=True)
class EmulateOptions:
    step_seconds: float = 4.0  # wall-clock seconds per emulated step
    max_steps: int = 24  # steps emulated per day, evenly spaced over the demand's steps
    total_rps: float = 40.0  # requests per second of all regions together at the day's peak
    min_rps: float = 2.0  # floor per region and kind (reads, writes)
    warmup_s: float = 5.0  # unmeasured traffic before the first day (JIT, sessions)
    memory_mib: float = 4096.0  # pre-copy model of a member's migration (SunConfig's defaults)
    dirty_mib_s: float = 20.0
    bandwidth_mib_s: float = 100.0
    max_pause_s: float = 1.5  # cap on a pause (below ZooKeeper's sync limit: no election)
    tick_ms: int = 500  # ZooKeeper's tick, x dilation
    # Time dilation (Gupta et al., NSDI 2006): every delay x dilation, every measured latency / dilation;
    # the emulated network is the same, the machine (servers, proxy, clients) looks dilation times faster.
    dilation: float = 1.0
    # the downtime of a member moved from one region to another; default: the pre-copy model above
    downtime_s: Callable[[str, str], float] | None = None
    tie: float = 0.02  # strategies whose model means differ by less than this share are not ranked
    heap_mb: int = 128


@dataclass(frozen=True, slots=True)
class StepFigures:
    step: int  # index into the demand's steps
    model_ms: float
    measured_ms: float
    leader_region: str
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StrategyRun:
    strategy: str
    model_mean_ms: float  # the follow-the-sun model on the actual placements, over the emulated steps
    measured_mean_ms: float
    error: float  # measured / model - 1
    # measured / (model + the service-time baseline) - 1: the model of the network plus what this machine
    # adds to each request with no delay at all (measured apart, before the days)
    error_plus_service: float
    model_p95_ms: float
    measured_p95_ms: float
    strategy_mean_ms: float  # the strategy's own figure (its whole day)
    migrations: int  # members moved with a pause
    downtime_s: float  # modelled downtime of those moves
    pause_s: float  # pauses applied (capped at max_pause_s)
    leader_changes: int  # elections seen during the day (the model follows them)
    requests: int
    errors: int
    steps: tuple[StepFigures, ...] = ()


@dataclass(frozen=True, slots=True)
class EmulationReport:
    members: int
    client_regions: tuple[str, ...]
    steps: tuple[int, ...]
    step_seconds: float
    rate_scale: float  # emulated requests per second per modelled request per second
    strategies: tuple[StrategyRun, ...]
    ranking_model: tuple[str, ...]
    ranking_measured: tuple[str, ...]
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    tie: float = 0.02

    @property
    def same_ranking(self) -> bool:
        """Every pair of strategies the model orders (means more than ``tie`` apart) is measured in that
        order; a pair the model ties (the same placements, say) may be measured either way."""
        for a in self.strategies:
            for b in self.strategies:
                if a.model_mean_ms < b.model_mean_ms * (1 - self.tie) and not (
                    a.measured_mean_ms < b.measured_mean_ms
                ):
                    return False
        return True

    @property
    def max_error(self) -> float:
        return max((abs(s.error) for s in self.strategies), default=0.0)

    @property
    def max_error_plus_service(self) -> float:
        return max((abs(s.error_plus_service) for s in self.strategies), default=0.0)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["same_ranking"] = self.same_ranking
        out["max_error"] = self.max_error
        out["max_error_plus_service"] = self.max_error_plus_service
        return out


def _steps(count: int, max_steps: int) -> list[int]:
    if count <= max_steps:
        return list(range(count))
    return sorted({math.floor(i * count / max_steps) for i in range(max_steps)})


def _groups(demand: Demand, step: int) -> dict[str, float]:
    """Requests per second of each matrix region's clients (client regions attached to one region
    perceive the same latencies, so one process serves them together)."""
    out: dict[str, float] = {}
    for c in demand.client_regions:
        out[demand.attach[c]] = out.get(demand.attach[c], 0.0) + demand.rate[step].get(c, 0.0)
    return out


def _p95(points: list[tuple[float, float]]) -> float:
    """The weighted 95th percentile of ``(value, weight)`` points."""
    points = sorted(p for p in points if p[1] > 0)
    total = sum(w for _, w in points)
    acc = 0.0
    for value, weight in points:
        acc += weight
        if acc >= 0.95 * total:
            return value
    return points[-1][0] if points else 0.0


def run(
    matrix: LatencyMatrix,
    demand: Demand,
    days: Sequence[StrategyDay],
    *,
    options: EmulateOptions | None = None,
    base_dir: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EmulationReport:
    """Emulate every strategy's day of ``days`` (each with one placement per demand step); see the
    module docstring."""
    opts = options or EmulateOptions()
    say = progress or (lambda _: None)
    if not days:
        raise ValueError("no strategy to emulate")
    count = len(demand.rate)
    for day in days:
        if len(day.placements) != count:
            raise ValueError(
                f"strategy {day.strategy}: {len(day.placements)} placements for {count} demand steps"
            )
    sizes = {len(p.members) for day in days for p in day.placements}
    if len(sizes) != 1:
        raise ValueError(f"the strategies place different numbers of members: {sorted(sizes)}")
    steps = _steps(count, opts.max_steps)
    groups = sorted({demand.attach[c] for c in demand.client_regions})
    peak = max(sum(_groups(demand, s).values()) for s in steps)
    scale = opts.total_rps / peak if peak > 0 else 1.0
    started = time.monotonic()

    first = days[0].placements[steps[0]]
    say(
        f"starting {len(first.members)} ZooKeeper servers behind the delay proxy, "
        f"{len(groups)} client regions"
    )
    with WideArea(
        matrix,
        first.members,
        groups,
        base_dir=base_dir,
        tick_ms=round(opts.tick_ms * opts.dilation),
        heap_mb=opts.heap_mb,
        delay_factor=opts.dilation,
    ) as area:
        area.start()
        clients = {g: ClientProcess(g, area.client_ports(g)) for g in groups}
        try:
            emulator = _Emulator(area, clients, matrix, demand, opts, scale, say)
            baseline = emulator.warm_up(first)
            runs = [emulator.day(day, steps, baseline["service_mean_ms"]) for day in days]
        finally:
            for client in clients.values():
                client.close()
    by_model = tuple(r.strategy for r in sorted(runs, key=lambda r: r.model_mean_ms))
    by_measured = tuple(r.strategy for r in sorted(runs, key=lambda r: r.measured_mean_ms))
    return EmulationReport(
        members=len(first.members),
        client_regions=tuple(groups),
        steps=tuple(steps),
        step_seconds=opts.step_seconds,
        rate_scale=scale,
        strategies=tuple(runs),
        ranking_model=by_model,
        ranking_measured=by_measured,
        wall_s=time.monotonic() - started,
        extra=baseline,
        tie=opts.tie,
    )


class _Emulator:
    def __init__(
        self,
        area: WideArea,
        clients: dict[str, ClientProcess],
        matrix: LatencyMatrix,
        demand: Demand,
        opts: EmulateOptions,
        scale: float,
        say: Callable[[str], None],
    ) -> None:
        self.area = area
        self.clients = clients
        self.model = sun_model.MODEL
        self.matrix = matrix
        self.demand = demand
        self.opts = opts
        self.scale = scale
        self.say = say

    # --- one step's traffic --------------------------------------------------------------------------
    def _traffic(
        self, placement: Placement, weights: dict[str, float], seconds: float
    ) -> dict[str, StepSample]:
        rf = self.demand.read_fraction
        use = {g: sun_model.nearest(self.matrix, placement, g) for g in self.clients}
        for g, client in self.clients.items():
            client.prepare(use[g])
        for client in self.clients.values():
            client.answer(timeout_s=120.0)
        for g, client in self.clients.items():
            w = weights.get(g, 0.0) * self.scale
            client.run(use[g], max(self.opts.min_rps, rf * w), max(self.opts.min_rps, (1 - rf) * w), seconds)
        out: dict[str, StepSample] = {}
        for g, c in self.clients.items():
            sample: StepSample = c.answer(timeout_s=seconds + 120.0)
            k = self.opts.dilation
            out[g] = StepSample(
                [x / k for x in sample.reads_ms], [x / k for x in sample.writes_ms], sample.errors
            )
        return out

    def warm_up(self, placement: Placement) -> dict[str, float]:
        """Unmeasured traffic (the servers' JIT, the sessions), then the service-time baseline: the same
        traffic with every delay removed (what the ensemble, the proxy and the clients add on this
        machine to the network's latency)."""
        leader = self.area.leader()
        self.area.place(assign_members(self.area.regions, placement, leader))
        actual = Placement(tuple(self.area.regions), leader)
        even = {g: 1.0 for g in self.clients}
        if self.opts.warmup_s > 0:
            self.say(f"warming up for {self.opts.warmup_s:g} s")
            self._traffic(actual, even, self.opts.warmup_s)
        self.area.set_delay_factor(0.0)
        try:
            self.say(f"service-time baseline (no delay) for {self.opts.step_seconds:g} s")
            samples = self._traffic(actual, even, self.opts.step_seconds)
        finally:
            self.area.set_delay_factor(self.opts.dilation)
        reads = [x for s in samples.values() for x in s.reads_ms]
        writes = [x for s in samples.values() for x in s.writes_ms]
        read = sum(reads) / len(reads) if reads else 0.0
        write = sum(writes) / len(writes) if writes else 0.0
        rf = self.demand.read_fraction
        return {
            "service_read_ms": read,
            "service_write_ms": write,
            "service_mean_ms": rf * read + (1 - rf) * write,
        }

    # --- placing the members -------------------------------------------------------------------------
    def _downtime(self, source: str, dest: str) -> float:
        if self.opts.downtime_s is not None:
            return self.opts.downtime_s(source, dest)
        return precopy(
            self.opts.memory_mib,
            dirty_mib_s=self.opts.dirty_mib_s,
            bandwidth_mib_s=self.opts.bandwidth_mib_s,
            rtt_ms=self.matrix.rtt(source, dest),
        ).downtime_s

    def _place(self, placement: Placement, *, migrate: bool) -> tuple[int, int, float, float, int]:
        """Members to ``placement``; returns (leader, migrations, modelled downtime, pause, elections)."""
        leader = self.area.leader()
        moves = 0
        downtime = pause = 0.0
        elections = 0
        for _attempt in range(3):
            target = assign_members(self.area.regions, placement, leader)
            if target == self.area.regions:
                break
            if not migrate:
                self.area.place(target)
            else:
                for k, region in enumerate(target):
                    if region == self.area.regions[k]:
                        continue
                    modelled = self._downtime(self.area.regions[k], region)
                    applied = min(modelled, self.opts.max_pause_s)
                    self.area.migrate(k, region, applied)
                    moves += 1
                    downtime += modelled
                    pause += applied
            now = self.area.leader()
            if now != leader:
                elections += 1
                leader = now
        return leader, moves, downtime, pause, elections

    # --- a strategy's day ----------------------------------------------------------------------------
    def day(self, day: StrategyDay, steps: Sequence[int], service_ms: float) -> StrategyRun:
        tally = _Tally(self.demand.read_fraction)
        figures: list[StepFigures] = []
        moves = elections = 0
        downtime = pause = 0.0
        for n, step in enumerate(steps):
            leader, m, d, p, e = self._place(day.placements[step], migrate=n > 0)
            moves, downtime, pause, elections = moves + m, downtime + d, pause + p, elections + e
            actual = Placement(tuple(self.area.regions), leader)
            weights = _groups(self.demand, step)
            samples = self._traffic(actual, weights, self.opts.step_seconds)
            if self.area.leader() != leader:
                elections += 1  # during the step: its figures mix two leaders
            modelled = {
                g: (self.model.read_ms(self.matrix, actual, g), self.model.write_ms(self.matrix, actual, g))
                for g in samples
            }
            step_model, step_measured = tally.add(samples, modelled, weights)
            figures.append(
                StepFigures(step, step_model, step_measured, actual.members[leader], actual.members)
            )
            self.say(
                f"{day.strategy} step {n + 1}/{len(steps)}: model {step_model:.1f} ms, "
                f"measured {step_measured:.1f} ms, leader in {actual.members[leader]}"
            )
        model_mean, measured_mean = tally.means()
        return StrategyRun(
            strategy=day.strategy,
            model_mean_ms=model_mean,
            measured_mean_ms=measured_mean,
            error=measured_mean / model_mean - 1 if model_mean else 0.0,
            error_plus_service=measured_mean / (model_mean + service_ms) - 1 if model_mean else 0.0,
            model_p95_ms=_p95(tally.model_points),
            measured_p95_ms=_p95(tally.measured_points),
            strategy_mean_ms=day.mean_ms,
            migrations=moves,
            downtime_s=downtime,
            pause_s=pause,
            leader_changes=elections,
            requests=tally.requests,
            errors=tally.errors,
            steps=tuple(figures),
        )


class _Tally:
    """Demand-weighted sums of a day's model and measured latencies (per region and kind: a region's
    measured read and write means weigh as its demand times the read and write fractions)."""

    def __init__(self, read_fraction: float) -> None:
        self.rf = read_fraction
        self.model_sum = self.measured_sum = self.weight = 0.0
        self.model_points: list[tuple[float, float]] = []
        self.measured_points: list[tuple[float, float]] = []
        self.requests = self.errors = 0

    def add(
        self,
        samples: dict[str, StepSample],
        modelled: dict[str, tuple[float, float]],
        weights: dict[str, float],
    ) -> tuple[float, float]:
        """Adds one step; returns its (model, measured) means."""
        rf = self.rf
        s_model = s_measured = s_weight = 0.0
        for g, sample in samples.items():
            self.requests += len(sample.reads_ms) + len(sample.writes_ms)
            self.errors += sample.errors
            w = weights.get(g, 0.0)
            if w <= 0 or not sample.reads_ms or not sample.writes_ms:
                continue
            read, write = modelled[g]
            mean_r = sum(sample.reads_ms) / len(sample.reads_ms)
            mean_w = sum(sample.writes_ms) / len(sample.writes_ms)
            s_model += w * (rf * read + (1 - rf) * write)
            s_measured += w * (rf * mean_r + (1 - rf) * mean_w)
            s_weight += w
            self.model_points += [(read, w * rf), (write, w * (1 - rf))]
            self.measured_points += [(x, w * rf / len(sample.reads_ms)) for x in sample.reads_ms]
            self.measured_points += [(x, w * (1 - rf) / len(sample.writes_ms)) for x in sample.writes_ms]
        self.model_sum += s_model
        self.measured_sum += s_measured
        self.weight += s_weight
        return (s_model / s_weight, s_measured / s_weight) if s_weight else (0.0, 0.0)

    def means(self) -> tuple[float, float]:
        if not self.weight:
            return 0.0, 0.0
        return self.model_sum / self.weight, self.measured_sum / self.weight
