"""``tropic sun``: a leader-based service (ZooKeeper-like) placed three ways over the same day of demand:
static in the best single region, static spread globally, and dynamic (the follow-the-sun policy)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tropic.cli import output
from tropic.errors import TropicError
from tropic.sun.policy import register

register()  # the autopilot policy ``sun`` (``tropic serve --autopilot sun:<service>``)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def sun_cmd(
    latency: str | None = typer.Option(
        None,
        "--latency",
        help="Round-trip matrix ({'data': {from: {to: ms}}}). Default: ../shared/data/latency/"
        "aws-cloudping-p50.json when present, else the shipped synthetic sample.",
    ),
    demand: str | None = typer.Option(
        None,
        "--demand",
        help="Hourly demand (utc_hour_iso,region_or_language,count). Default: ../shared/data's Wikipedia "
        "edits by time-zone band when present, else the shipped business-hours sample.",
    ),
    hours: float = typer.Option(24.0, "--hours", help="Length of the day replayed."),
    step_min: float = typer.Option(15.0, "--step-min", help="Minutes per step."),
    members: int = typer.Option(5, "--members", help="Members of the service (quorum: a majority)."),
    capacity: int | None = typer.Option(
        None, "--capacity", help="Members per region at most (default: all)."
    ),
    read_fraction: float = typer.Option(0.9, "--read-fraction", help="Share of requests that are reads."),
    smooth_h: int = typer.Option(
        3, "--smooth-h", help="Hours of the centred moving average over the demand (1: the raw counts)."
    ),
    without: str = typer.Option("", "--without", help="Comma-separated regions removed from the matrix."),
    clients: str = typer.Option("", "--clients", help="Comma-separated client regions kept (default: all)."),
    budget: int = typer.Option(7, "--budget", help="Member migrations allowed in any 24 hours."),
    hysteresis: float = typer.Option(0.08, "--hysteresis", help="Least forecast gain (share) to migrate."),
    horizon_h: float = typer.Option(3.0, "--horizon-h", help="Hours of demand forecast a decision weighs."),
    dwell_h: float = typer.Option(8.0, "--dwell-h", help="Hours before a region may undo a move."),
    plots: str | None = typer.Option(None, "--plots", help="Write sun-latency.png and sun-members.png here."),
    oracle: bool = typer.Option(
        False,
        "--oracle",
        help="Also the hourly oracle: each hour's best placement CP-SAT finds, moved for free.",
    ),
    bound: bool = typer.Option(
        False,
        "--bound",
        help="Also the exhaustive bound: every placement tried at every step, moved for free; the largest "
        "reduction any strategy could reach on this demand (seconds for 5 members over 32 regions).",
    ),
    no_controller: bool = typer.Option(
        False,
        "--no-controller",
        help="Take the dynamic moves as done instead of running them as transactions.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    emulate: bool = typer.Option(
        False, "--emulate", help="Replay each day on a real ZooKeeper ensemble behind a delay proxy."
    ),
    time_scale: float = typer.Option(720.0, "--time-scale", help="--emulate: the day runs this much faster."),
    emulate_steps: int = typer.Option(
        24, "--emulate-steps", help="--emulate: steps replayed (evenly spaced)."
    ),
    dilation: float = typer.Option(
        1.0, "--dilation", help="--emulate: time dilation (delays x k, measured latencies / k)."
    ),
) -> None:
    """Compare static-single, static-global and dynamic placement of a replicated service over one day:
    mean and p95 perceived latency (reads at the nearest member, writes through the leader and a majority),
    migrations, downtime (pre-copy model) and transfer cost. Exit status 2 on bad input."""
    from tropic.sun.planner import SunConfig
    from tropic.sun.run import SunSpec, run

    try:
        config = SunConfig(
            members=members,
            capacity=capacity if capacity is not None else members,
            hysteresis=hysteresis,
            budget_per_day=budget,
            horizon_h=horizon_h,
            dwell_h=dwell_h,
        )
        spec = SunSpec(
            latency=Path(latency) if latency else None,
            demand=Path(demand) if demand else None,
            hours=hours,
            step_min=step_min,
            read_fraction=read_fraction,
            smooth_h=smooth_h,
            without=_names(without),
            clients=_names(clients),
            config=config,
            controlled=not no_controller,
            oracle=oracle,
            bound=bound,
        )
        if emulate:
            from tropic.cli.sun_emulate import check_options

            check_options(time_scale, emulate_steps, dilation)
        if not json_out:
            output.err_console.print("placing the service three ways over the day...")
        result = run(spec)
        data = result.to_dict()
        if plots is not None:
            from tropic.sun.plots import write_plots

            data["plots"] = [str(p) for p in write_plots(result, Path(plots))]
        if emulate:
            from tropic.cli.sun_emulate import emulate as emulate_day

            data["emulation"] = emulate_day(
                result, time_scale=time_scale, steps=emulate_steps, dilation=dilation, quiet=False
            )
        if json_out:
            output.emit_json(data)
            return
        table = Table(title=f"{Path(str(data['latency'])).name}, {Path(str(data['demand'])).name}")
        for col in ("strategy", "mean ms", "p95 ms", "migrations", "downtime s", "cost $"):
            table.add_column(col, justify="right")
        strategies = data["strategies"]
        assert isinstance(strategies, dict)
        for day in result.days:
            row = strategies[day.strategy]
            table.add_row(
                day.strategy,
                f"{row['mean_ms']:.1f}",
                f"{row['p95_ms']:.1f}",
                str(row["migrations"]),
                f"{row['downtime_s']:.2f}",
                f"{row['cost']:.3f}",
            )
        output.console.print(table)
        output.console.print(
            f"dynamic vs best static: {100 * strategies['reduction_vs_best_static']:.1f}% lower mean"
        )
        if result.bound is not None:
            from tropic.sun.strategies import best_static

            limit = result.bound
            ceiling = limit.ceiling(best_static(result.days))
            output.console.print(
                f"bound over {limit.placements:,} placements: static optimum {limit.static_ms:.1f} ms; every "
                f"step at its best, moved for free, {limit.bound_ms:.1f} ms: no strategy gains more than "
                f"{100 * ceiling:.1f}%"
            )
        if emulate:
            from tropic.cli.sun_emulate import print_table

            print_table(data["emulation"])
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
