"""The comparison: every policy asked for, each on its own controller, from CloudSim's first-fit initial
placement, and the figures side by side (``energy_vs_lr_mmt``: a policy's energy over LR-MMT's)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tropic.autopilot.base import Policy
from tropic.autopilot.bench.datacenter import first_fit_placement
from tropic.autopilot.bench.fleet import cloudsim_fleet
from tropic.autopilot.bench.lr_mmt import LrMmt
from tropic.autopilot.bench.metrics import npa_energy_kwh
from tropic.autopilot.bench.runner import RunResult, run_policy
from tropic.autopilot.bench.watcher import NoConsolidation, WatcherConsolidation
from tropic.autopilot.bench.workload import read_trace
from tropic.errors import InvalidArguments

POLICIES = ("npa", "none", "watcher", "lr-mmt", "tropic")
TROPIC_MODULE = "tropic.autopilot.policies.consolidation"


@dataclass(frozen=True)
class BenchSpec:
    trace: Path
    hosts: int = 800
    vms: int | None = None
    policies: tuple[str, ...] = POLICIES
    headroom: float = 0.9  # tropic's: the CPU share of a host its current demand may use
    memory_enforced: bool = False
    store: str | None = None
    time_limit: float = 1.0  # per pass, for every policy
    percentile: float | None = None  # tropic's demand: max(reading now, this percentile of the last hour)

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise InvalidArguments(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICIES)}")
        if not self.policies:
            raise InvalidArguments("--policies names no policy")
        if not 0.0 < self.headroom <= 1.0:
            raise InvalidArguments(
                f"--headroom {self.headroom:g} is impossible: a host's predicted use must stay within a "
                "fraction of its capacity in (0, 1]"
            )
        if not 0.0 < self.time_limit < float("inf"):
            raise InvalidArguments(
                f"--time-limit {self.time_limit:g} is impossible: a pass needs a positive number of seconds"
            )
        if self.percentile is not None and not 0.0 <= self.percentile <= 100.0:
            raise InvalidArguments(f"--percentile {self.percentile:g} is impossible: it must be in [0, 100]")
        if self.hosts < 1:
            raise InvalidArguments(f"--hosts must be at least 1, got {self.hosts}")
        if self.vms is not None and self.vms < 1:
            raise InvalidArguments(f"--vms must be at least 1, got {self.vms}")


def tropic_policy(headroom: float, percentile: float | None = None) -> tuple[Policy | None, str]:
    """tropic's CP-SAT consolidation policy when this build has it, else None and why."""
    try:
        module = importlib.import_module(TROPIC_MODULE)
    except ModuleNotFoundError:
        return None, f"{TROPIC_MODULE} is not in this build: the tropic policy was not run"
    maker = getattr(module, "make_consolidation", None)
    if callable(maker):
        from tropic.autopilot.bench.tropic_pair import TropicAutopilot
        from tropic.autopilot.policies.hotspot import HotspotRelief

        relief = HotspotRelief(threshold=max(headroom, min(1.0, headroom + 0.1)), headroom=headroom)
        consolidation = cast("Policy", maker(headroom=headroom))
        return TropicAutopilot(relief, consolidation, percentile=percentile), ""
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if (
            cls.__module__ == module.__name__
            and callable(getattr(cls, "plan", None))
            and hasattr(cls, "name")
        ):
            return cast(
                "Callable[..., Policy]", cls
            )(), f"{cls.__name__} takes no headroom: run with its defaults"
    return None, f"{TROPIC_MODULE} defines no policy class"


@dataclass
class BenchResult:
    spec: BenchSpec
    vms: int
    steps: int
    runs: dict[str, RunResult] = field(default_factory=dict)
    npa_kwh: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lr = self.runs.get("lr-mmt")
        for name in self.spec.policies:
            if name == "npa":
                out[name] = {
                    "energy_kwh": round(self.npa_kwh or 0.0, 3),
                    "slatah": 0.0,
                    "pdm": 0.0,
                    "slav": 0.0,
                }
                out[name] |= {"migrations": 0, "pass_s_p99": 0.0}
                continue
            run = self.runs.get(name)
            if run is None:
                out[name] = None
                continue
            row = run.to_dict()
            if lr is not None and lr.accounting.energy_kwh > 0:
                row["energy_vs_lr_mmt"] = round(run.accounting.energy_kwh / lr.accounting.energy_kwh, 4)
            out[name] = row
        tropic = self.runs.get("tropic")
        return {
            "trace": str(self.spec.trace),
            "hosts": self.spec.hosts,
            "vms": self.vms,
            "steps": self.steps,
            "memory": "enforced" if self.spec.memory_enforced else "cloudsim",
            "headroom": self.spec.headroom,
            "percentile": self.spec.percentile,
            "policies": out,
            "energy_vs_lr_mmt": (
                round(tropic.accounting.energy_kwh / lr.accounting.energy_kwh, 4)
                if tropic is not None and lr is not None and lr.accounting.energy_kwh > 0
                else None
            ),
            "notes": self.notes,
        }


def run_bench(spec: BenchSpec, *, on_policy: Callable[[str], None] | None = None) -> BenchResult:
    trace = read_trace(spec.trace, max_vms=spec.vms)
    fleet = cloudsim_fleet(spec.hosts, trace.names, memory_enforced=spec.memory_enforced)
    placement = first_fit_placement(fleet)
    result = BenchResult(spec, fleet.vms, trace.steps)
    if "npa" in spec.policies:
        result.npa_kwh = npa_energy_kwh(fleet, trace.steps - 1)
    makers: dict[str, Callable[[], Policy | None]] = {
        "none": NoConsolidation,
        "watcher": WatcherConsolidation,
        "lr-mmt": LrMmt,
    }
    for name in spec.policies:
        if name == "npa":
            continue
        policy: Policy | None
        if name == "tropic":
            policy, note = tropic_policy(spec.headroom, spec.percentile)
            if note:
                result.notes["tropic"] = note
        else:
            policy = makers[name]()
        if policy is None:
            continue
        if on_policy is not None:
            on_policy(name)
        result.runs[name] = run_policy(
            trace, fleet, placement, policy, store=spec.store, time_limit=spec.time_limit
        )
    return result
