"""What a replay measures: one compact record per finished transaction, turned into the summary figures
(latency percentiles, throughput, aborts by reason) and the time series the report plots.

Latency is submit -> COMMITTED, read from the transaction's own state timestamps; aborted transactions
count by their error code, never in the latency figures.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tropic.txn import State, Transaction

SPAWN, DESTROY = 0, 1
KIND_NAMES = ("spawn", "destroy")
_COMMITTED, _ABORTED, _FAILED = 0, 1, 2
_STATE_CODES = {State.COMMITTED: _COMMITTED, State.ABORTED: _ABORTED, State.FAILED: _FAILED}

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    """Per-window figures over the replay, on the trace's clock (hours from the trace start)."""

    window_s: float  # wall seconds per window
    trace_h: Floats  # window centres
    offered_txn_s: Floats  # submissions per wall second
    throughput_txn_s: Floats  # commits per wall second
    p50_ms: Floats  # of the transactions submitted in the window that committed (NaN: none)
    p95_ms: Floats
    p99_ms: Floats
    hosts_trace_h: Floats
    hosts_used: Floats
    live_vms: Floats


def latency_figures(latency_s: Floats) -> dict[str, float]:
    """p50/p95/p99/max/mean in milliseconds (all 0 for no sample)."""
    if latency_s.size == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ms = latency_s * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(ms.max()), 3),
        "mean": round(float(ms.mean()), 3),
    }


def memory_status() -> dict[str, float]:
    """Resident memory now and at its peak (GiB), from /proc/self/status (0 where not available)."""
    out = {"rss_gib": 0.0, "peak_rss_gib": 0.0}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            kib = int(value.split()[0])
            out["rss_gib" if key == "VmRSS" else "peak_rss_gib"] = round(kib / 2**20, 3)
    return out


class Recorder:
    """Collects finished transactions on the replay's thread. Times are seconds from ``wall0`` (the
    wall-clock instant the schedule starts), so trace time = wall offset x speedup when on schedule."""

    def __init__(self, wall0: float, speedup: float) -> None:
        self.wall0 = wall0
        self.speedup = speedup
        self._kind = array("b")
        self._state = array("b")
        self._submit = array("d")
        self._latency = array("d")
        self.aborted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._hosts_at = array("d")
        self._hosts_used = array("d")
        self._live_vms = array("d")
        self.max_queue_depth = 0
        self.peak_hosts_used = 0
        self.max_lag_s = 0.0

    def __len__(self) -> int:
        return len(self._kind)

    def finished(self, kind: int, t: Transaction) -> None:
        submitted = t.times.get(State.SUBMITTED.value, self.wall0)
        latency = t.latency_s
        self._kind.append(kind)
        self._state.append(_STATE_CODES.get(t.state, _ABORTED))
        self._submit.append(submitted - self.wall0)
        self._latency.append(latency if latency is not None else math.nan)
        if t.state is not State.COMMITTED:
            code = str((t.error or {}).get("code", t.state.value.lower()))
            self.aborted[code] += 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def hosts(self, trace_s: float, used: int, live_vms: int) -> None:
        self._hosts_at.append(trace_s)
        self._hosts_used.append(used)
        self._live_vms.append(live_vms)

    # --- figures ------------------------------------------------------------------------------------------
    def _arrays(self) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8], Floats, Floats]:
        # Copies: a live view would forbid the arrays from growing.
        return (
            np.frombuffer(self._kind, dtype=np.int8).copy(),
            np.frombuffer(self._state, dtype=np.int8).copy(),
            np.frombuffer(self._submit, dtype=np.float64).copy(),
            np.frombuffer(self._latency, dtype=np.float64).copy(),
        )

    def summary(self) -> dict[str, Any]:
        kind, state, submit, latency = self._arrays()
        ok = state == _COMMITTED
        committed = int(ok.sum())
        out: dict[str, Any] = {
            "finished": len(self),
            "committed": committed,
            "aborted": int((state == _ABORTED).sum()),
            "failed": int((state == _FAILED).sum()),
            "aborted_by_reason": dict(sorted(self.aborted.items())),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected": sum(self.rejected.values()),
            "latency_ms": latency_figures(latency[ok]),
            "latency_ms_by_kind": {
                name: latency_figures(latency[ok & (kind == k)]) for k, name in enumerate(KIND_NAMES)
            },
            "max_queue_depth": self.max_queue_depth,
            "peak_hosts_used": self.peak_hosts_used,
            "max_lag_ms": round(self.max_lag_s * 1000, 3),
        }
        if len(self):
            done = submit + np.nan_to_num(latency, nan=0.0)
            first, last = float(submit.min()), float(done[ok].max()) if committed else float(submit.max())
            out["busy_s"] = round(last - first, 3)
            out["throughput_txn_s"] = round(committed / (last - first), 1) if last > first else 0.0
        else:
            out["busy_s"] = 0.0
            out["throughput_txn_s"] = 0.0
        return out

    def series(self, windows: int = 200) -> Series:
        kind, state, submit, latency = self._arrays()
        del kind
        ok = state == _COMMITTED
        done = submit + np.nan_to_num(latency, nan=0.0)
        span = float(max(submit.max(), done.max())) if len(self) else 0.0
        width = max(span / windows, 1e-3)
        n = max(1, math.ceil(span / width))
        edges = np.arange(n + 1, dtype=np.float64) * width
        offered = np.histogram(submit, bins=edges)[0] / width
        throughput = np.histogram(done[ok], bins=edges)[0] / width
        p50, p95, p99 = (np.full(n, np.nan) for _ in range(3))
        idx = np.clip((submit / width).astype(np.int64), 0, n - 1)
        lat_ms = latency * 1000.0
        order = np.argsort(idx[ok], kind="stable")
        by_window = idx[ok][order]
        values = lat_ms[ok][order]
        starts = np.searchsorted(by_window, np.arange(n), side="left")
        ends = np.searchsorted(by_window, np.arange(n), side="right")
        for w in range(n):
            if ends[w] > starts[w]:
                p50[w], p95[w], p99[w] = np.percentile(values[starts[w] : ends[w]], [50, 95, 99])
        centres = (edges[:-1] + width / 2) * self.speedup / 3600.0
        return Series(
            window_s=width,
            trace_h=centres,
            offered_txn_s=offered.astype(np.float64),
            throughput_txn_s=throughput.astype(np.float64),
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            hosts_trace_h=np.frombuffer(self._hosts_at, dtype=np.float64) / 3600.0,
            hosts_used=np.frombuffer(self._hosts_used, dtype=np.float64).copy(),
            live_vms=np.frombuffer(self._live_vms, dtype=np.float64).copy(),
        )
