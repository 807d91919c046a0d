"""Embedded-mode commands: ``run-workload`` and ``check``."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tropic.cli import output
from tropic.scenario.workload import WorkloadSpec, check_store, run_workload


def run_workload_cmd(
    store: str = typer.Option(..., "--store", help="Store file (created if missing, resumed if present)."),
    txns: int = typer.Option(1000, "--txns", min=1, help="Total requests in the workload."),
    seed: int = typer.Option(0, "--seed", help="Workload seed: request i is a function of (seed, i)."),
    fail_rate: float = typer.Option(
        0.03, "--fail-rate", min=0.0, max=1.0, help="Chance a device step fails."
    ),
    undo_fail_rate: float = typer.Option(
        0.0, "--undo-fail-rate", min=0.0, max=1.0, help="Chance an undo fails."
    ),
    latency: float = typer.Option(0.0, "--latency", min=0.0, help="Simulated device seconds per action."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a random mix of procedures against a store; SIGKILL-safe, and resumes when run again."""
    spec = WorkloadSpec(
        txns=txns, seed=seed, fail_rate=fail_rate, undo_fail_rate=undo_fail_rate, latency=latency
    )
    if json_out:
        result = run_workload(store, spec)
        output.emit_json(result)
        return
    with Progress(
        TextColumn("workload"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=output.err_console,
    ) as bar:
        task = bar.add_task("submit", total=txns)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done)

        result = run_workload(store, spec, progress=tick)
    output.console.print(f"resumed from request {result['resumed_from']}, all {txns} requests final")


def check_cmd(
    store: str = typer.Option(..., "--store", help="Store file to recover and check."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recover a store and check it: nothing in flight, no duplicates, model == devices, no violation."""
    report = check_store(store)
    healthy = (
        report["in_flight"] == 0
        and report["duplicates"] == 0
        and report["consistent"]
        and report["violations"] == 0
    )
    if json_out:
        output.emit_json(report)
    else:
        for key in ("submitted", "by_state", "in_flight", "duplicates", "consistent", "violations", "fenced"):
            output.console.print(f"{key}: {report[key]}")
        for d in report["differences"]:
            output.console.print(f"[red]difference[/] {d}")
    raise typer.Exit(0 if healthy else 1)
