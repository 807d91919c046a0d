"""One ``tropic sun`` run as plain data: which matrix and demand (the shared data when present, else the
shipped samples), the planner's configuration, and the three strategies' days. ``tropic sun --emulate``
replays the same :class:`SunResult` (its ``days``: each strategy's placement per step) on real processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tropic.errors import ConfigError
from tropic.sun import demand as demand_mod
from tropic.sun import latency as latency_mod
from tropic.sun.bound import Bound, bound
from tropic.sun.contract import Demand, LatencyMatrix, StrategyDay
from tropic.sun.planner import SunConfig
from tropic.sun.strategies import (
    Actuate,
    best_static,
    compare,
    dynamic,
    oracle_hourly,
    static_global,
    static_single,
    to_dict,
)


def latency_sample_path() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("tropic") / "data" / "latency-sample" / "cloudping-p50.json"))


@dataclass(frozen=True)
class SunSpec:
    latency: Path | None = None  # default: ../shared/data's AWS matrix, else the shipped sample
    demand: Path | None = None  # default: ../shared/data's time-zone bands, else the business-hours sample
    hours: float = 24.0
    step_min: float = 15.0
    read_fraction: float = 0.9
    smooth_h: int = 3  # hours of the demand's centred moving average (1: the raw hourly counts)
    without: tuple[str, ...] = ()  # regions taken out of the matrix
    clients: tuple[str, ...] = ()  # keep only these client regions (empty: all)
    config: SunConfig = field(default_factory=SunConfig)
    controlled: bool = True  # the dynamic day's moves as migrate_member transactions of a controller
    oracle: bool = False  # also the hourly oracle (a bound, not a strategy)
    bound: bool = False  # also the exhaustive bound (tropic.sun.bound)


@dataclass
class SunResult:
    spec: SunSpec
    latency_path: Path
    demand_path: Path
    matrix: LatencyMatrix
    demand: Demand
    days: list[StrategyDay]
    controller: dict[str, object] = field(default_factory=dict)
    bound: Bound | None = None

    def to_dict(self) -> dict[str, object]:
        cfg = self.spec.config
        return {
            "latency": str(self.latency_path),
            "demand": str(self.demand_path),
            "regions": len(self.matrix.regions),
            "removed": list(self.spec.without),
            "client_regions": {c: self.demand.attach[c] for c in self.demand.client_regions},
            "read_fraction": self.demand.read_fraction,
            "quorum": f"majority of {cfg.members} ({cfg.members // 2 + 1})",
            "members": cfg.members,
            "capacity": cfg.capacity,
            "steps": len(self.demand.rate),
            "step_min": self.demand.step_s / 60,
            "policy": {
                "horizon_h": cfg.horizon_h,
                "hysteresis": cfg.hysteresis,
                "budget_per_day": cfg.budget_per_day,
                "dwell_h": cfg.dwell_h,
                "decide_every_min": cfg.decide_every_min,
            },
            "strategies": to_dict(self.days, self.demand),
            "controller": self.controller,
            **({"bound": self.bound.to_dict(best_static(self.days))} if self.bound else {}),
        }


def resolve(spec: SunSpec) -> tuple[Path, Path]:
    lat = spec.latency or (
        latency_mod.DEFAULT_LATENCY if latency_mod.DEFAULT_LATENCY.exists() else latency_sample_path()
    )
    dem = spec.demand or (
        demand_mod.DEFAULT_DEMAND if demand_mod.DEFAULT_DEMAND.exists() else demand_mod.business_sample_path()
    )
    return lat, dem


def load_inputs(spec: SunSpec) -> tuple[Path, Path, LatencyMatrix, Demand]:
    lat_path, dem_path = resolve(spec)
    if not 1 <= spec.smooth_h <= 24:
        raise ConfigError(f"--smooth-h {spec.smooth_h}: expected 1 (raw) to 24 hours")
    matrix = latency_mod.load_matrix(lat_path)
    if spec.without:
        matrix = latency_mod.without(matrix, spec.without)
    demand = demand_mod.load(
        dem_path,
        matrix,
        hours=spec.hours,
        step_min=spec.step_min,
        read_fraction=spec.read_fraction,
        smooth_h=spec.smooth_h,
    )
    if spec.clients:
        unknown = sorted(set(spec.clients) - set(demand.client_regions))
        if unknown:
            raise ConfigError(
                f"{dem_path}: no client region {unknown[0]!r} (has {', '.join(demand.client_regions)})"
            )
        demand = dataclasses.replace(
            demand,
            client_regions=tuple(spec.clients),
            attach={c: demand.attach[c] for c in spec.clients},
            rate=tuple({c: r[c] for c in spec.clients} for r in demand.rate),
        )
    return lat_path, dem_path, matrix, demand


def run(
    spec: SunSpec, *, actuate: Actuate | None = None, on_step: Callable[[int], None] | None = None
) -> SunResult:
    """Load the inputs and compare the three strategies over the day; with ``spec.controlled`` (and no
    ``actuate`` given) the dynamic day runs its moves as transactions of an embedded controller."""
    lat_path, dem_path, matrix, demand = load_inputs(spec)
    extra = [oracle_hourly(matrix, demand, spec.config)] if spec.oracle else []
    cfg = spec.config
    limit = bound(matrix, demand, members=cfg.members, capacity=cfg.capacity) if spec.bound else None
    if not spec.controlled or actuate is not None:
        days = compare(matrix, demand, spec.config, actuate=actuate, on_step=on_step)
        return SunResult(spec, lat_path, dem_path, matrix, demand, days + extra, bound=limit)
    from tropic.sun.controlled import ControlledService

    single = static_single(matrix, demand, spec.config)
    glob = static_global(matrix, demand, spec.config)
    service = ControlledService.start(matrix, spec.config, glob.placements[0])
    try:
        dyn = dynamic(
            matrix, demand, spec.config, initial=glob.placements[0], actuate=service.actuate, on_step=on_step
        )
        committed = sorted(service.committed_regions().values())
    finally:
        service.stop()
    if committed != sorted(dyn.placements[-1].members):
        raise ConfigError(
            f"the controller's members {committed} differ from the day's {dyn.placements[-1].members}"
        )
    info: dict[str, object] = {
        "transactions": service.transactions,
        "migrate_member_refused": service.refused,
        "members_committed": committed,
        "errors": service.errors[:5],
    }
    return SunResult(spec, lat_path, dem_path, matrix, demand, [single, glob, dyn, *extra], info, limit)
