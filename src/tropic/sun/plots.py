"""``tropic sun --plots``: perceived latency over the day per strategy, and where each member was."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tropic.sun.run import SunResult


def write_plots(result: SunResult, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    step_h = result.demand.step_s / 3600
    latency = folder / "sun-latency.png"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for day in result.days:
        ax.plot([k * step_h for k in range(len(day.step_mean_ms))], day.step_mean_ms, label=day.strategy)
    ax.set_xlabel("UTC hour")
    ax.set_ylabel("mean perceived latency (ms)")
    ax.set_title(f"{result.latency_path.name}, {result.demand_path.name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(latency, dpi=110)
    plt.close(fig)
    where = folder / "sun-members.png"
    days = result.days
    fig, axes = plt.subplots(len(days), 1, figsize=(8, 2.2 * len(days) + 0.6), sharex=True, squeeze=False)
    for ax, day in zip(axes[:, 0], days, strict=True):
        regions = sorted({m for p in day.placements for m in p.members})
        index = {r: i for i, r in enumerate(regions)}
        per_hour = max(1, round(1 / step_h))
        for k in range(0, len(day.placements), per_hour):
            p = day.placements[k]
            counts: dict[str, int] = {}
            for m in p.members:
                counts[m] = counts.get(m, 0) + 1
            for r, n in counts.items():
                lead = r == p.members[p.leader]
                ax.scatter([k * step_h], [index[r]], s=30 * n, c="tab:red" if lead else "tab:blue")
        ax.set_yticks(range(len(regions)), regions, fontsize=7)
        ax.set_title(f"{day.strategy}: members per region each hour (red: the leader's region)", fontsize=9)
    axes[-1, 0].set_xlabel("UTC hour")
    fig.tight_layout()
    fig.savefig(where, dpi=110)
    plt.close(fig)
    return [latency, where]
