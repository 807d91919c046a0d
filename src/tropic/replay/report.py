"""The replay report: a markdown summary and PNG plots (latency over time, throughput against offered
load, hosts used) written to a folder; for a speedup sweep, one more page and plot over all its runs.

matplotlib is imported here only, with the non-interactive Agg backend, so the rest of tropic never
pays for it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tropic.errors import ConfigError
from tropic.replay.metrics import Series

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tropic.replay.engine import ReplayResult
    from tropic.replay.sweep import SweepResult

REAL_ATTRIBUTION = (
    "Trace: Azure Public Dataset V1 (Cortez et al., Resource Central, SOSP 2017; CC-BY 4.0), "
    "as processed by the trace_generation_rnn project (MIT)."
)
SAMPLE_ATTRIBUTION = (
    "Trace: synthetic sample in the Azure Public Dataset V1 format (generated from its summary statistics)."
)
LATENCY_PNG = "latency.png"
THROUGHPUT_PNG = "throughput.png"
HOSTS_PNG = "hosts.png"
SWEEP_PNG = "sweep.png"


def attribution(summary: dict[str, Any]) -> str:
    directory = str(summary.get("trace", {}).get("directory", ""))
    return SAMPLE_ATTRIBUTION if directory.endswith("azure-sample") else REAL_ATTRIBUTION


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the replay report needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _prepare(folder: str | Path) -> Path:
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create report folder {out}: {e.strerror or e}", path=str(out)) from None
    if not out.is_dir():
        raise ConfigError(f"report folder {out} is not a directory", path=str(out))
    return out


def _save(fig: Figure, path: Path, caption: str) -> Path:
    fig.text(0.01, 0.005, caption, fontsize=6, color="#666666", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    return path


def write_report(result: ReplayResult, folder: str | Path) -> list[Path]:
    """Write ``report.md``, ``summary.json`` and the three plots; return the files written."""
    out = _prepare(folder)
    plt = _pyplot()
    s, series = result.summary, result.series
    caption = attribution(s)
    files = [
        _latency_plot(plt, series, s, out / LATENCY_PNG, caption),
        _throughput_plot(plt, series, s, out / THROUGHPUT_PNG, caption),
        _hosts_plot(plt, series, s, out / HOSTS_PNG, caption),
    ]
    csv = out / "series.csv"
    csv.write_text(series_csv(series))
    files.append(csv)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(s, indent=2, sort_keys=True, default=str) + "\n")
    md = out / "report.md"
    md.write_text(markdown(s))
    return [md, summary_path, *files]


def series_csv(series: Series) -> str:
    """The per-window figures behind the plots, one row per window."""
    rows = ["trace_h,offered_txn_s,throughput_txn_s,p50_ms,p95_ms,p99_ms"]
    for values in zip(
        series.trace_h,
        series.offered_txn_s,
        series.throughput_txn_s,
        series.p50_ms,
        series.p95_ms,
        series.p99_ms,
        strict=True,
    ):
        rows.append(",".join("" if math.isnan(v) else f"{v:.4g}" for v in values))
    return "\n".join(rows) + "\n"


def _latency_plot(plt: Any, series: Series, s: dict[str, Any], path: Path, caption: str) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    for values, label, width in (
        (series.p50_ms, "p50", 1.0),
        (series.p95_ms, "p95", 0.8),
        (series.p99_ms, "p99", 0.8),
    ):
        ax.plot(series.trace_h, values, label=label, linewidth=width)
    ax.set_yscale("log")
    ax.set_xlabel("trace time (hours)")
    ax.set_ylabel("latency submit -> COMMITTED (ms)")
    lat = s["latency_ms"]
    ax.set_title(
        f"Latency at {s['speedup']:g}x  (overall p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; "
        f"window {series.window_s * s['speedup'] / 60:.0f} trace min)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = _save(fig, path, caption)
    plt.close(fig)
    return path


def _throughput_plot(plt: Any, series: Series, s: dict[str, Any], path: Path, caption: str) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(series.trace_h, series.offered_txn_s, label="offered", linewidth=0.8)
    left.plot(series.trace_h, series.throughput_txn_s, label="committed", linewidth=0.8)
    left.set_xlabel("trace time (hours)")
    left.set_ylabel("transactions / s (wall clock)")
    left.set_title(f"Offered load and throughput at {s['speedup']:g}x")
    left.grid(True, alpha=0.3)
    left.legend()
    right.scatter(series.offered_txn_s, series.throughput_txn_s, s=6, alpha=0.6)
    top = float(max(np.max(series.offered_txn_s, initial=0.0), np.max(series.throughput_txn_s, initial=0.0)))
    top = top * 1.05 if top > 0 else 1.0
    right.plot(
        [0, top], [0, top], color="#999999", linewidth=0.8, linestyle="--", label="throughput = offered"
    )
    right.set_xlim(0, top)
    right.set_ylim(0, top)
    right.set_xlabel("offered (txn/s, per window)")
    right.set_ylabel("committed (txn/s, per window)")
    right.set_title("Throughput vs offered load")
    right.grid(True, alpha=0.3)
    right.legend()
    path = _save(fig, path, caption)
    plt.close(fig)
    return path


def _hosts_plot(plt: Any, series: Series, s: dict[str, Any], path: Path, caption: str) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step(series.hosts_trace_h, series.hosts_used, where="post", label="hosts used", color="C0")
    ax.axhline(
        s["hosts"], color="C0", linestyle=":", linewidth=0.8, label=f"hosts in datacenter ({s['hosts']})"
    )
    ax.set_xlabel("trace time (hours)")
    ax.set_ylabel("hosts with at least one VM")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    twin = ax.twinx()
    twin.plot(series.hosts_trace_h, series.live_vms, color="C1", linewidth=0.8, label="VMs placed")
    twin.set_ylabel("VMs placed")
    twin.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower right")
    ax.set_title(f"Hosts used ({s['placement']} placement)")
    path = _save(fig, path, caption)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if not math.isnan(value) else "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    rows: list[tuple[str, Any]] = [
        ("trace", f"{s['trace']['directory']} ({s['trace']['vms']:,} VMs, {s['trace']['time_bins']} bins)"),
        ("speedup", f"{s['speedup']:g}x"),
        ("arrivals / lifetimes in bin", f"{s['arrivals_in_bin']} / {s['lifetimes_in_bin']}"),
        (
            "datacenter",
            f"{s['hosts']:,} hosts of {s['host']['cpus']} CPUs, {s['host']['memory_mib'] // 1024} GiB",
        ),
        ("placement", f"{s['placement']}" + (", idle hosts first" if s.get("prefer_idle") else "")),
        ("store", s["store"]),
        ("transactions submitted", s["submitted"]),
        ("offered rate (txn/s)", s["offered_txn_s"]),
        ("throughput (txn/s)", s["throughput_txn_s"]),
        ("latency p50 / p95 / p99 (ms)", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}"),
        ("latency max (ms)", lat["max"]),
        ("committed", s["committed"]),
        ("aborted", s["aborted"]),
        ("rejected by placement", s["rejected"]),
        ("max queue depth", s["max_queue_depth"]),
        ("max submission lag (ms)", s["max_lag_ms"]),
        ("peak hosts used", s["peak_hosts_used"]),
        ("all transactions final", s["all_final"]),
        ("logical model == devices", s.get("consistent", "not checked")),
        ("wall time (s)", s["elapsed_s"]),
    ]
    lines = [f"# Trace replay at {s['speedup']:g}x", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    lines += ["", "## Not committed, by reason", ""]
    reasons = {**s["aborted_by_reason"], **{f"rejected: {k}": v for k, v in s["rejected_by_reason"].items()}}
    if reasons:
        lines += ["| reason | count |", "|---|---|"] + [f"| {k} | {v:,} |" for k, v in reasons.items()]
    else:
        lines.append("Every transaction committed and every VM found a host.")
    lines += [
        "",
        "## Latency by procedure (ms)",
        "",
        "| procedure | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for name, figures in s["latency_ms_by_kind"].items():
        cells = " | ".join(f"{figures[k]:.1f}" for k in ("p50", "p95", "p99", "max"))
        lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        "## Plots",
        "",
        f"![latency over time]({LATENCY_PNG})",
        "",
        f"![throughput vs offered load]({THROUGHPUT_PNG})",
        "",
        f"![hosts used]({HOSTS_PNG})",
        "",
        f"Latency is submit -> COMMITTED from each transaction's own timestamps. {attribution(s)}",
        "",
    ]
    return "\n".join(lines)


def write_sweep_report(sweep: SweepResult, folder: str | Path) -> list[Path]:
    """Write ``sweep.md``, ``sweep.json`` and ``sweep.png`` (p99 and throughput against speedup)."""
    out = _prepare(folder)
    plt = _pyplot()
    points = sweep.points
    speeds = [p.speedup for p in points]
    p99 = [p.p99_ms for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(speeds, p99, marker="o")
    left.axhline(
        sweep.bound_ms, color="C3", linestyle="--", linewidth=0.8, label=f"bound {sweep.bound_ms:g} ms"
    )
    if sweep.best is not None:
        left.axvline(sweep.best, color="C2", linestyle=":", linewidth=0.8, label=f"best {sweep.best:g}x")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("speedup")
    left.set_ylabel("p99 latency (ms)")
    left.set_title("p99 latency against speedup")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    offered = [_num(p.detail.get("offered_txn_s")) for p in points]
    committed = [_num(p.detail.get("throughput_txn_s")) for p in points]
    right.plot(offered, committed, marker="o")
    for x, y, sp in zip(offered, committed, speeds, strict=True):
        right.annotate(f"{sp:g}x", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    top = max([*offered, *committed, 1.0]) * 1.05
    right.plot([0, top], [0, top], color="#999999", linestyle="--", linewidth=0.8)
    right.set_xlabel("offered (txn/s)")
    right.set_ylabel("throughput (txn/s)")
    right.set_title("Throughput against offered load, one point per run")
    right.grid(True, alpha=0.3)
    caption = attribution(points[0].detail) if points else ""
    png = _save(fig, out / SWEEP_PNG, caption)
    plt.close(fig)
    data = out / "sweep.json"
    data.write_text(json.dumps(sweep.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
    md = out / "sweep.md"
    best = f"{sweep.best:g}x" if sweep.best is not None else "none"
    lines = [
        f"# Speedup sweep (p99 bound {sweep.bound_ms:g} ms)",
        "",
        f"Highest speedup with p99 under the bound: **{best}**",
        "",
        "| speedup | offered (txn/s) | throughput (txn/s) | p50 (ms) | p99 (ms) | max queue | under bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        d = p.detail
        lat = d.get("latency_ms", {})
        lines.append(
            f"| {p.speedup:g}x | {_fmt(d.get('offered_txn_s'))} | {_fmt(d.get('throughput_txn_s'))} | "
            f"{_fmt(lat.get('p50'))} | {_fmt(p.p99_ms)} | {_fmt(d.get('max_queue_depth'))} | "
            f"{'yes' if p.passed else 'no'} |"
        )
    lines += ["", f"![sweep]({SWEEP_PNG})", "", caption, ""]
    md.write_text("\n".join(lines))
    return [md, data, png]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def valid_png(path: Path) -> bool:
    """A PNG signature and a non-empty image header (what tests check of the plots)."""
    head = path.read_bytes()[:24]
    return (
        len(head) == 24
        and head[:8] == b"\x89PNG\r\n\x1a\n"
        and head[12:16] == b"IHDR"
        and int.from_bytes(head[16:20], "big") > 0
        and int.from_bytes(head[20:24], "big") > 0
    )
