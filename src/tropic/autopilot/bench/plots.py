"""The bench's PNG plots: active hosts over the day per policy, and energy against SLAV."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tropic.autopilot.bench.compare import BenchResult
from tropic.autopilot.bench.fleet import INTERVAL_S


def write_plots(result: BenchResult, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    hosts = folder / "active-hosts.png"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, run in result.runs.items():
        series = run.accounting.active_hosts
        ax.plot([k * INTERVAL_S / 3600 for k in range(len(series))], series, label=name)
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("active hosts")
    ax.set_title(f"active hosts, {Path(result.spec.trace).name}, {result.spec.hosts} hosts, {result.vms} VMs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(hosts, dpi=110)
    plt.close(fig)
    scatter = folder / "energy-vs-slav.png"
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, run in result.runs.items():
        ax.scatter([run.accounting.slav], [run.accounting.energy_kwh], s=60)
        ax.annotate(
            name, (run.accounting.slav, run.accounting.energy_kwh), textcoords="offset points", xytext=(6, 4)
        )
    ax.set_xlabel("SLAV (SLATAH x PDM)")
    ax.set_ylabel("energy (kWh)")
    ax.set_title("energy against SLA violation")
    fig.tight_layout()
    fig.savefig(scatter, dpi=110)
    plt.close(fig)
    return [hosts, scatter]
