"""Follow the sun: the decision keeping a leader-based service's members (and its leader) where its
clients are; :class:`tropic.autopilot.policies.sun.SunPolicy` runs it as an autopilot plug-in.

:class:`SunPlanner` is the decision, pure and replayable. Each pass (``decide``) it:

1. looks ahead: the placement it picks takes effect ``lead`` steps later, ``lead`` being the steps the
   migrations need (members move one at a time, so a majority stays up; each move's transfer time is the
   pre-copy model's, :func:`tropic.geo.precopy.precopy`), and it is judged on the demand **forecast**
   over the ``horizon_h`` hours from then on, so a move starts early enough to end before the peak;
2. solves the CP-SAT model of :mod:`tropic.sun.placement` (members per region and the
   leader's region) minimising the forecast demand-weighted perceived latency plus the migration cost
   (every request during a move's downtime delayed by the whole downtime, a pessimistic bound);
3. keeps the current placement unless the candidate's forecast latency is lower by more than
   ``hysteresis`` (a share, e.g. 0.08 = 8%) **and** by more than the migration cost, and the move
   also pays over the ``dwell_h`` hours the regions it touches will be held (step 4);
4. never exceeds ``budget_per_day`` member moves in any 24 hours, and never sends a member back into a
   region that lost one (or out of a region that gained one) within ``dwell_h`` hours: no A -> B -> A
   inside the window.

"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tropic.errors import ConfigError
from tropic.geo.precopy import PreCopy, precopy
from tropic.sun.contract import Demand, LatencyMatrix, Placement
from tropic.sun.model import step_points
from tropic.sun.placement import counts_of, placement_of, solve

Forecast = Callable[[int], Mapping[str, float]]  # step -> client region -> requests per second


@dataclass(frozen=True, slots=True)
class SunConfig:
    """The policy's knobs. Migration: ``memory_mib`` per member, ``dirty_mib_s``, the link model
    (``bandwidth_mib_s``, ``window_mib``); ``election_s``: writes unavailable while a new leader is
    elected."""

    members: int = 5
    capacity: int = 5  # members per region at most
    horizon_h: float = 3.0
    decide_every_min: float = 60.0
    hysteresis: float = 0.08
    budget_per_day: int = 7
    dwell_h: float = 8.0
    memory_mib: float = 4096.0
    dirty_mib_s: float = 20.0
    bandwidth_mib_s: float = 1250.0  # the path's capacity ...
    window_mib: float = 16.0  # ... and a stream's window: rate = min(capacity, window / rtt), as /links
    election_s: float = 1.0
    neighbours: int = 2  # candidate regions: the entry regions and this many nearest to each
    time_limit: float = 3.0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.members < 1 or self.capacity < 1:
            raise ConfigError(f"sun: members and capacity must be >= 1, got {self.members}, {self.capacity}")
        if self.budget_per_day < 0 or self.hysteresis < 0 or self.dwell_h < 0 or self.horizon_h <= 0:
            raise ConfigError("sun: budget, hysteresis and dwell must be >= 0, the horizon > 0")


@dataclass(frozen=True, slots=True)
class MoveRecord:
    step: int  # the step the move took effect
    source: str
    dest: str


def migration(config: SunConfig, matrix: LatencyMatrix, source: str, dest: str) -> PreCopy:
    """The pre-copy of one member from ``source`` to ``dest`` at ``min(capacity, window / rtt)``, the
    rate the model's ``/links`` gives a region pair (``docs/geo.md``)."""
    rtt_ms = matrix.rtt(source, dest)
    rate = (
        config.bandwidth_mib_s
        if rtt_ms <= 0
        else min(config.bandwidth_mib_s, config.window_mib / (rtt_ms / 1000))
    )
    return precopy(config.memory_mib, dirty_mib_s=config.dirty_mib_s, bandwidth_mib_s=rate, rtt_ms=rtt_ms)


def moves_between(old: Placement, new: Placement) -> list[tuple[str, str]]:
    """The member moves (source region, dest region) turning ``old`` into ``new`` (counts per region)."""
    a, b = counts_of(old), counts_of(new)
    out_ = [r for r in sorted(a) for _ in range(a[r] - b.get(r, 0)) if a[r] > b.get(r, 0)]
    in_ = [r for r in sorted(b) for _ in range(b[r] - a.get(r, 0)) if b[r] > a.get(r, 0)]
    return list(zip(out_, in_, strict=True))


def candidates(matrix: LatencyMatrix, entries: set[str], neighbours: int) -> tuple[str, ...]:
    """Entry regions and the ``neighbours`` nearest regions of each (a member elsewhere serves no one
    nearest and only slows a quorum)."""
    cand = set(entries)
    for e in entries:
        cand |= set(sorted(matrix.regions, key=lambda r: (matrix.rtt(e, r), r))[: neighbours + 1])
    return tuple(r for r in matrix.regions if r in cand)


@dataclass
class SunPlanner:
    matrix: LatencyMatrix
    demand: Demand  # the day (its attachment and step); the forecast gives the rates
    config: SunConfig = field(default_factory=SunConfig)
    forecast: Forecast | None = None  # default: the demand's own day profile (yesterday = today)
    history: list[MoveRecord] = field(default_factory=list)
    solve_s: list[float] = field(default_factory=list)
    last_why: str = ""

    def _rates(self, step: int) -> Mapping[str, float]:
        if self.forecast is not None:
            return self.forecast(step)
        return self.demand.rate[step % len(self.demand.rate)]

    @property
    def steps_per_day(self) -> int:
        return max(1, round(86_400 / self.demand.step_s))

    def lead_steps(self, current: Placement, target: Placement) -> int:
        """Steps the moves from ``current`` to ``target`` need, one member after another (at least 1)."""
        total = sum(
            migration(self.config, self.matrix, s, d).transfer_s for s, d in moves_between(current, target)
        )
        return max(1, math.ceil(total / self.demand.step_s))

    def window_cost(self, placement: Placement, start: int, hours: float | None = None) -> float:
        """Forecast request-ms of ``placement`` over ``hours`` (default: the horizon) from step ``start``."""
        span = self.config.horizon_h if hours is None else hours
        steps = max(1, round(span * 3600 / self.demand.step_s))
        total = 0.0
        for k in range(start, start + steps):
            rates = self._rates(k)
            d = Demand(
                self.demand.step_s,
                self.demand.client_regions,
                self.demand.attach,
                (dict(rates),),
                self.demand.read_fraction,
            )
            pts = step_points(self.matrix, d, placement, 0)
            total += sum(v * w for v, w in pts)
        return total

    def _volumes(self, start: int) -> tuple[dict[str, float], dict[str, float]]:
        steps = max(1, round(self.config.horizon_h * 3600 / self.demand.step_s))
        reads: dict[str, float] = {}
        writes: dict[str, float] = {}
        rf = self.demand.read_fraction
        for k in range(start, start + steps):
            for client, rate in self._rates(k).items():
                e = self.demand.attach[client]
                vol = rate * self.demand.step_s
                reads[e] = reads.get(e, 0.0) + vol * rf
                writes[e] = writes.get(e, 0.0) + vol * (1 - rf)
        return reads, writes

    def moves_in_last_day(self, step: int) -> int:
        return sum(1 for m in self.history if step - m.step < self.steps_per_day)

    def decide(self, step: int, current: Placement) -> tuple[Placement, int]:
        """The placement to have from step ``step + lead`` (``current`` when nothing is worth moving) and
        ``lead``. Records why in :attr:`last_why`."""
        cfg = self.config
        lead = 1
        reads, writes = self._volumes(step + lead)
        dwell = round(cfg.dwell_h * 3600 / self.demand.step_s)
        recent = [m for m in self.history if step + lead - m.step < dwell]
        hold_down = frozenset(m.source for m in recent)  # lost a member lately: may not gain one back
        hold_up = frozenset(m.dest for m in recent)  # gained one lately: may not lose it
        budget = cfg.budget_per_day - self.moves_in_last_day(step + lead)
        cur_counts = counts_of(current)
        lead_region = current.members[current.leader]
        cand = tuple(sorted(set(candidates(self.matrix, set(reads), cfg.neighbours)) | set(cur_counts)))
        volume_s = sum(self._rates(step + lead).values())
        worst = max(
            (migration(cfg, self.matrix, a, b).downtime_s for a in cand for b in cand if a != b), default=0.0
        )
        move_cost = volume_s * worst * worst * 1000.0  # requests in the downtime x the whole downtime (ms)
        leader_cost = volume_s * (1 - self.demand.read_fraction) * cfg.election_s * cfg.election_s * 1000.0
        start = time.perf_counter()
        solved = solve(
            self.matrix,
            reads,
            writes,
            members=cfg.members,
            capacity=cfg.capacity,
            current=cur_counts,
            current_leader=lead_region,
            move_cost=move_cost,
            leader_cost=leader_cost,
            budget=budget,
            hold_up=hold_up,
            hold_down=hold_down,
            regions=cand,
            time_limit=cfg.time_limit,
            workers=cfg.workers,
        )
        self.solve_s.append(time.perf_counter() - start)
        if solved is None:
            self.last_why = f"step {step}: no placement within the budget and the anti-flap window"
            return current, lead
        target = placement_of(solved.counts, solved.leader, self.matrix.regions)
        moves = moves_between(current, target)
        if not moves and solved.leader == lead_region:
            self.last_why = f"step {step}: the placement is at its optimum"
            return current, lead
        lead = self.lead_steps(current, target)
        now = self.window_cost(current, step + lead)
        then = self.window_cost(target, step + lead)
        cost = move_cost * len(moves) + (leader_cost if solved.leader != lead_region else 0.0)
        gain = now - then
        if gain <= cfg.hysteresis * now or gain <= cost:
            self.last_why = (
                f"step {step}: best candidate gains {100 * gain / now if now else 0:.1f}% over the next "
                f"{cfg.horizon_h:g} h, under the hysteresis of {100 * cfg.hysteresis:g}% or the move cost"
            )
            return current, lead
        if moves and cfg.dwell_h > cfg.horizon_h:
            # the regions a move touches stay put for dwell_h: it must not be a loss over that time
            held = self.window_cost(current, step + lead, cfg.dwell_h) - self.window_cost(
                target, step + lead, cfg.dwell_h
            )
            if held < cost:
                self.last_why = (
                    f"step {step}: the best candidate gains over {cfg.horizon_h:g} h but loses over the "
                    f"{cfg.dwell_h:g} h its regions would be held"
                )
                return current, lead
        self.last_why = (
            f"step {step}: {len(moves)} move(s) {moves}, leader {solved.leader}: "
            f"{100 * gain / now:.1f}% less forecast latency over {cfg.horizon_h:g} h"
        )
        return target, lead

    # --- the autopilot plug-in's view (tropic.autopilot.policies.sun.RegionPlanner) ---
    @property
    def step_s(self) -> int:
        return self.demand.step_s

    def knows(self, region: str) -> bool:
        return region in self.matrix.rtt_ms

    def decide_regions(self, step: int, members: tuple[str, ...], leader: int) -> tuple[tuple[str, ...], int]:
        """:meth:`decide` on plain tuples; the moves it answers count as done from ``step + lead``."""
        current = Placement(members, leader)
        target, lead = self.decide(step, current)
        if target != current:
            self.record(step + lead, current, target)
        return target.members, target.leader

    def record(self, step: int, current: Placement, target: Placement) -> None:
        """Note the moves that took effect at ``step`` (the anti-flap window and the budget read them)."""
        self.history += [MoveRecord(step, s, d) for s, d in moves_between(current, target)]
        horizon = max(self.steps_per_day, round(self.config.dwell_h * 3600 / self.demand.step_s))
        self.history = [m for m in self.history if step - m.step < horizon]
