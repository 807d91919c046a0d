"""``tropic autopilot bench``: consolidation policies side by side on a PlanetLab day (CloudSim's
datacenter and metrics), with the controller's transactions in the loop. ``register`` adds it to the
``tropic autopilot`` group."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tropic.cli import output
from tropic.errors import TropicError


def bench_cmd(
    trace: str | None = typer.Option(
        None, "--trace", help="A PlanetLab day (DAY.csv.gz: vm,u0..u287). Default: the shipped sample."
    ),
    hosts: int = typer.Option(800, "--hosts", help="Hosts (half HP ML110 G4, half G5, alternating)."),
    vms: int | None = typer.Option(None, "--vms", help="Replay only the trace's first N VMs."),
    policies: str = typer.Option(
        "npa,none,watcher,lr-mmt,tropic",
        "--policies",
        help="Comma-separated: npa, none, watcher, lr-mmt, tropic.",
    ),
    headroom: float = typer.Option(
        0.9,
        "--headroom",
        help="tropic policy: demand <= this share of a host (relief above this + 0.1, at most 1).",
    ),
    percentile: float | None = typer.Option(
        None,
        "--percentile",
        help="tropic policy: a VM's demand is max(its reading now, this percentile of its last 12); "
        "default: the reading now, as the other policies see it.",
    ),
    memory: str = typer.Option(
        "cloudsim",
        "--memory",
        help="cloudsim: a running VM holds no RAM (as in CloudSim's runs); enforced: 4 GB per host bind.",
    ),
    time_limit: float = typer.Option(
        1.0,
        "--time-limit",
        help="Seconds a policy may think per pass (the tropic policy stops sooner when done).",
    ),
    store: str | None = typer.Option(
        None, "--store", help="Store URI for each run's controller (fresh; default: in memory)."
    ),
    plot_dir: str | None = typer.Option(
        None, "--plot-dir", help="Write active-hosts.png and energy-vs-slav.png here."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Replay one PlanetLab day in 5-minute steps under each policy (no consolidation, OpenStack Watcher's
    VM workload consolidation, LR-MMT, tropic's CP-SAT policy) and print energy, SLATAH, PDM, SLAV,
    migrations, active host-hours and decision time per pass. Exit status 2 on bad input."""
    from tropic.autopilot.bench.compare import BenchSpec, run_bench
    from tropic.autopilot.bench.workload import sample_path
    from tropic.errors import InvalidArguments

    try:
        if memory not in ("cloudsim", "enforced"):
            raise InvalidArguments(f"--memory must be cloudsim or enforced, got {memory!r}")
        spec = BenchSpec(
            trace=Path(trace) if trace else sample_path(),
            hosts=hosts,
            vms=vms,
            policies=tuple(p.strip() for p in policies.split(",") if p.strip()),
            headroom=headroom,
            memory_enforced=memory == "enforced",
            store=store,
            time_limit=time_limit,
            percentile=percentile,
        )

        def said(name: str) -> None:
            if not json_out:
                output.err_console.print(f"replaying the day under {name}...")

        result = run_bench(spec, on_policy=said)
        data = result.to_dict()
        if plot_dir is not None:
            from tropic.autopilot.bench.plots import write_plots

            data["plots"] = [str(p) for p in write_plots(result, Path(plot_dir))]
        if json_out:
            output.emit_json(data)
            return
        table = Table(title=f"{Path(data['trace']).name}: {data['hosts']} hosts, {data['vms']} VMs")
        for col in (
            "policy",
            "energy kWh",
            "SLATAH %",
            "PDM %",
            "SLAV",
            "migrations",
            "host-h",
            "pass p99 s",
        ):
            table.add_column(col, justify="right")
        for name, row in data["policies"].items():
            if row is None:
                table.add_row(name, "not run", "", "", "", "", "", "")
                continue
            table.add_row(
                name,
                f"{row['energy_kwh']:.2f}",
                f"{row['slatah'] * 100:.3f}",
                f"{row['pdm'] * 100:.4f}",
                f"{row['slav']:.2e}",
                f"{row['migrations']:,}",
                f"{row.get('active_host_hours', 0):,.0f}",
                f"{row['pass_s_p99']:.3f}",
            )
        output.console.print(table)
        for name, note in data["notes"].items():
            output.console.print(f"{name}: {note}")
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``tropic autopilot`` group."""
    app.command("bench")(bench_cmd)
