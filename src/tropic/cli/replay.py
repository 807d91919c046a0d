"""``tropic replay``: replay a VM arrival trace against a fresh controller, time-compressed, and report
throughput, latency percentiles, aborts and hosts used; ``--sweep`` finds the highest speedup that keeps
p99 latency under a bound."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tropic.cli import output
from tropic.errors import InvalidArguments, TropicError
from tropic.replay import (
    Arrivals,
    HostProfile,
    Lifetimes,
    Policy,
    ReplayProgress,
    ReplayResult,
    ReplaySpec,
    TraceFiles,
    run_replay,
)
from tropic.replay.engine import plan_events
from tropic.replay.report import write_report, write_sweep_report
from tropic.replay.sweep import SweepPoint, parse_speedups, run_uri, sweep


def _choice(enum: type[Policy] | type[Arrivals] | type[Lifetimes], value: str, option: str) -> str:
    allowed = [e.value for e in enum]
    if value not in allowed:
        raise InvalidArguments(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def replay_cmd(
    arrivals: str | None = typer.Option(
        None, "--arrivals", help="arrivals.txt of an Azure-format trace (default: the shipped sample)."
    ),
    lifetimes: str | None = typer.Option(
        None, "--lifetimes", help="lifetimes.txt (default: lifetimes.txt beside --arrivals)."
    ),
    flavors: str | None = typer.Option(None, "--flavors", help="flavors.txt (default: beside --arrivals)."),
    lifetime_bins: str | None = typer.Option(
        None, "--lifetime-bins", help="lifetime-bins.txt (default: beside --lifetimes)."
    ),
    speedup: float = typer.Option(500.0, "--speedup", min=1e-6, help="Time compression: trace s per wall s."),
    hosts: int | None = typer.Option(
        None, "--hosts", min=1, help="Hosts in the datacenter (default: sized for the trace's peak demand)."
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        help="Store URI for the run (sqlite:///PATH, memory://, or any scheme tropic knows, e.g. zk://); "
        "it must be fresh. Default: SQLite in a temporary folder.",
    ),
    report_dir: str = typer.Option("replay-report", "--report", help="Folder for report.md and the plots."),
    no_report: bool = typer.Option(False, "--no-report", help="Do not write the report folder."),
    sweep_list: str | None = typer.Option(
        None, "--sweep", help="Speedups to try, e.g. 1,10,50,100: find the highest with p99 under the bound."
    ),
    p99_bound: float = typer.Option(100.0, "--p99-bound-ms", min=1e-3, help="p99 bound of --sweep (ms)."),
    refine: int = typer.Option(
        0, "--refine", min=0, help="Extra bisection runs after --sweep brackets the bound."
    ),
    max_bins: int | None = typer.Option(None, "--max-bins", min=1, help="Replay only the first N time bins."),
    max_vms: int | None = typer.Option(None, "--max-vms", min=1, help="Replay only the first N VMs."),
    placement: str = typer.Option("best-fit", "--placement", help="best-fit (pack) or worst-fit (spread)."),
    no_prefer_idle: bool = typer.Option(
        False, "--no-prefer-idle", help="Place on busy hosts too (spawns then queue on host locks)."
    ),
    arrivals_in_bin: str = typer.Option(
        "uniform", "--arrivals-in-bin", help="Where VMs arrive within a 300 s bin: uniform, batch, bin-start."
    ),
    lifetimes_in_bin: str = typer.Option(
        "uniform", "--lifetimes-in-bin", help="Where lifetimes fall within a lifetime bin: uniform, midpoint."
    ),
    host_cpus: int = typer.Option(16, "--host-cpus", min=1, help="CPUs per host."),
    host_memory_gib: int = typer.Option(128, "--host-memory-gib", min=1, help="Memory per host (GiB)."),
    workers: int = typer.Option(4, "--workers", min=1, help="Worker threads of the controller."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary (or the sweep) as JSON."),
) -> None:
    """Replay a VM arrival trace (Azure V1 format): a spawn at each arrival, placed by a best-fit
    capacity index, and a destroy at each VM's end of life, time-compressed by --speedup."""
    try:
        report = Path(report_dir)
        if arrivals is None:
            if lifetimes is not None or flavors is not None or lifetime_bins is not None:
                raise InvalidArguments("--lifetimes, --flavors and --lifetime-bins need --arrivals")
            files = TraceFiles.sample()
        else:
            beside = Path(arrivals).parent / "lifetimes.txt"
            files = TraceFiles.resolve(arrivals, lifetimes or beside, flavors, lifetime_bins)
        spec = ReplaySpec(
            speedup=speedup,
            hosts=hosts,
            host=HostProfile(cpus=host_cpus, memory_mib=host_memory_gib * 1024),
            store=store,
            workers=workers,
            policy=Policy(_choice(Policy, placement, "--placement")),
            prefer_idle=not no_prefer_idle,
            arrivals=Arrivals(_choice(Arrivals, arrivals_in_bin, "--arrivals-in-bin")),
            lifetimes=Lifetimes(_choice(Lifetimes, lifetimes_in_bin, "--lifetimes-in-bin")),
        )
        speedups = parse_speedups(sweep_list) if sweep_list is not None else None
        with output.err_console.status("loading the trace..."):
            trace = files.load(max_bins=max_bins, max_vms=max_vms)
            events = plan_events(trace, spec)
        if not events:
            raise InvalidArguments(f"the trace in {files.arrivals.parent} has no VM to replay")
        show = not json_out

        def one(run_spec: ReplaySpec, label: str) -> ReplayResult:
            if not show:
                return run_replay(trace, run_spec, events=events)
            with Progress(
                TextColumn(f"replay {label}"),
                BarColumn(),
                TextColumn("{task.fields[trace]}"),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=output.err_console,
            ) as bar:
                task = bar.add_task("replay", total=len(events), trace="", counts="")
                return run_replay(trace, run_spec, events=events, progress=lambda p: _update(bar, task, p))

        if speedups is None:
            result = one(spec, f"{spec.speedup:g}x")
            written = [] if no_report else write_report(result, report)
            summary = dict(result.summary, report=str(report) if written else None)
            if json_out:
                output.emit_json(summary)
            else:
                _print_summary(summary)
            raise typer.Exit(0 if result.healthy else 1)

        def run_at(s: float) -> ReplayResult:
            result = one(dataclasses.replace(spec, speedup=s, store=run_uri(store, s)), f"{s:g}x")
            if not no_report:
                write_report(result, report / f"s{s:g}")
            return result

        def said(point: SweepPoint) -> None:
            if show:
                verdict = "[green]under[/]" if point.passed else "[red]over[/]"
                output.err_console.print(
                    f"{point.speedup:g}x: p99 {point.p99_ms:.1f} ms, {verdict} the bound"
                )

        result_sweep = sweep(speedups, run_at, bound_ms=p99_bound, refine=refine, on_point=said)
        if not no_report:
            write_sweep_report(result_sweep, report)
        data = dict(result_sweep.to_dict(), store=store or "sqlite (temporary file per run)")
        data["report"] = None if no_report else str(report)
        if json_out:
            output.emit_json(data)
        else:
            best = result_sweep.best
            output.console.print(
                f"highest speedup with p99 < {p99_bound:g} ms: {best:g}x"
                if best is not None
                else f"no speedup kept p99 under {p99_bound:g} ms"
            )
            if not no_report:
                output.console.print(f"report: {report / 'sweep.md'}")
        raise typer.Exit(0 if result_sweep.best is not None else 1)
    except TropicError as e:  # bad input: one clear line and exit 2, here and under main()
        output.fail(e, code=output.exit_code(e))


def _update(bar: Progress, task: TaskID, p: ReplayProgress) -> None:
    lag = f", {p.lag_s * 1000:.0f} ms behind" if p.lag_s > 0.05 else ""
    bar.update(
        task,
        completed=p.events_done,
        trace=f"{p.trace_s / 3600:.1f}/{p.span_s / 3600:.1f} h",
        counts=f"{p.submitted:,} submitted, {p.outstanding:,} in flight, {p.rejected:,} rejected{lag}",
    )


def _print_summary(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    table = Table(title=f"replay at {s['speedup']:g}x", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("transactions", f"{s['submitted']:,} ({s['committed']:,} committed)"),
        ("offered rate", f"{s['offered_txn_s']:,} txn/s"),
        ("throughput", f"{s['throughput_txn_s']:,} txn/s"),
        ("latency p50 / p95 / p99", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms"),
        ("aborted by reason", ", ".join(f"{k}: {v}" for k, v in s["aborted_by_reason"].items()) or "none"),
        ("rejected (no capacity)", f"{s['rejected']:,}"),
        ("max queue depth", f"{s['max_queue_depth']:,}"),
        ("hosts used (peak / datacenter)", f"{s['peak_hosts_used']:,} / {s['hosts']:,}"),
        ("logical == physical", str(s.get("consistent", "not checked"))),
        ("all final", str(s["all_final"])),
    ]
    for k, v in rows:
        table.add_row(k, v)
    output.console.print(table)
    if s.get("report"):
        output.console.print(f"report: {Path(str(s['report'])) / 'report.md'}")
