"""The predictor: each subject's load for the next pass, as a moving percentile of its recent readings,
and the :class:`~tropic.autopilot.base.Snapshot` a policy sees.

**Which predictor, and why.** The p90 of the last 12 readings (an hour of 5-minute passes) by default.
A high percentile over a short window follows a diurnal ramp within the hour, ignores single spikes (one
reading in twelve moves p90 only between neighbouring ranks), and errs on the side of more capacity: a
policy packing VMs by p90 overloads a host only when the load rises past what 90% of the last hour saw.
Beloglazov & Buyya's local regression reacts faster to a trend but overshoots on the noisy PlanetLab
traces; a percentile is robust, monotone in its inputs and cheap (a sort of 12 numbers per VM).
Percentiles interpolate linearly between ranks (numpy's default), so the value always lies between the
window's minimum and maximum.

**Stale.** A subject whose newest reading is older than ``stale_after_s`` (default 900 s: three missed
5-minute passes), or that has no reading at all, is stale: its demand is unknown (None, never 0%), it is
listed in :attr:`Snapshot.stale`, and so is its host, so policies leave both alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tropic.autopilot.base import CPU, HostState, Snapshot, VMState
from tropic.autopilot.fleet import read_images, read_services
from tropic.autopilot.kb import KnowledgeBase
from tropic.errors import ConfigError
from tropic.model import RUNNING, Model


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """``percentile`` (0-100) of the last ``samples`` readings; stale after ``stale_after_s`` seconds."""

    percentile: float = 90.0
    samples: int = 12
    stale_after_s: float = 900.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ConfigError(f"predictor percentile must be between 0 and 100, not {self.percentile}")
        if self.samples < 1:
            raise ConfigError(f"predictor samples must be at least 1, not {self.samples}")
        if not (self.stale_after_s > 0 and math.isfinite(self.stale_after_s)):
            raise ConfigError(f"predictor stale_after_s must be a positive number, not {self.stale_after_s}")


@dataclass(frozen=True, slots=True)
class Prediction:
    """``value``: the predicted reading (None without readings); ``at``: the newest reading's time."""

    subject: str
    metric: str
    value: float | None
    at: float | None
    samples: int
    stale: bool


def moving_percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linearly interpolated between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    frac = rank - lo
    value = ordered[lo] + (ordered[hi] - ordered[lo]) * frac
    return min(max(value, ordered[0]), ordered[-1])  # rounding never leaves the window's range


class Predictor:
    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()

    def predict(self, kb: KnowledgeBase, subject: str, metric: str, now: float) -> Prediction:
        c = self.config
        window = kb.series(subject, metric)[-c.samples :]
        if not window:
            return Prediction(subject, metric, None, None, 0, True)
        newest = window[-1][0]
        value = moving_percentile([v for _, v in window], c.percentile)
        return Prediction(subject, metric, value, newest, len(window), now - newest > c.stale_after_s)


def snapshot(model: Model, kb: KnowledgeBase, now: float, *, predictor: Predictor | None = None) -> Snapshot:
    """The fleet as a policy sees it: hosts and VMs of the committed ``model`` (read only), each running
    VM's predicted CPU demand in cores (utilisation x vCPUs; None when stale), and the stale subjects (a
    VM, and the host of any stale VM or whose own reading is stale), and the managed services. A stopped VM
    demands nothing."""
    pred = predictor or Predictor()
    hosts: dict[str, HostState] = {}
    vms: dict[str, VMState] = {}
    stale: set[str] = set()
    host_vms: dict[str, list[str]] = {}
    for path, node in model.nodes.items():
        a = node.attrs
        if node.kind == "vm":
            host = path.rsplit("/", 1)[0]
            vcpus = int(a.get("vcpus", 0))
            demand: float | None = 0.0
            if a.get("state", RUNNING) == RUNNING:
                p = pred.predict(kb, path, CPU, now)
                demand = None if p.stale or p.value is None else p.value * vcpus
                if demand is None:
                    stale.update((path, host))
            vms[path] = VMState(
                path=path,
                host=host,
                vcpus=vcpus,
                memory_mib=int(a.get("memory_mib", 0)),
                uid=str(a.get("uid", "")),
                demand=demand,
                labels=dict(a.get("labels") or {}),
            )
            host_vms.setdefault(host, []).append(path)
    for path, node in model.nodes.items():
        if node.kind != "host":
            continue
        a = node.attrs
        own = pred.predict(kb, path, CPU, now)
        if own.samples and own.stale:
            stale.add(path)
        parts = path.split("/")
        hosts[path] = HostState(
            path=path,
            region=parts[2] if len(parts) > 3 else "",
            cpus=int(a.get("cpus", 0)),
            memory_mib=int(a.get("memory_mib", 0)),
            cpu_overcommit=float(a.get("cpu_overcommit", 4.0)),
            failure_domain=str(a.get("failure_domain", "")),
            cordoned=bool(a.get("cordoned", False)),
            powered=bool(a.get("powered", True)),
            driver=str(a.get("driver", "")),
            vms=tuple(sorted(host_vms.get(path, ()))),
            labels=dict(a.get("labels") or {}),
        )
    view = model.reader()
    return Snapshot(
        at=now,
        hosts=hosts,
        vms=vms,
        stale=frozenset(stale),
        services=read_services(view),
        images=read_images(view),
    )
