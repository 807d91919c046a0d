"""Embedded-mode commands: ``run-workload`` and ``check``.

``run-workload`` acts on a store it owns (``--store``) or through the server that owns one (``--url``);
``check`` recovers a free store, or reads a live one read-only (:mod:`tropic.scenario.check`).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tropic.cli import output
from tropic.cli.target import Token, Url, exactly_one
from tropic.errors import InvalidArguments
from tropic.owner import Holder
from tropic.scenario.check import check_store
from tropic.scenario.workload import Progress as Tick
from tropic.scenario.workload import WorkloadSpec, run_remote_workload, run_workload


def run_workload_cmd(
    store: str | None = typer.Option(
        None, "--store", help="Store file (created if missing, resumed if present); owned while it runs."
    ),
    url: Url = None,
    token: Token = None,
    txns: int = typer.Option(1000, "--txns", min=1, help="Total requests in the workload."),
    seed: int = typer.Option(0, "--seed", help="Workload seed: request i is a function of (seed, i)."),
    fail_rate: float = typer.Option(
        0.03, "--fail-rate", min=0.0, max=1.0, help="Chance a device step fails (--store only)."
    ),
    undo_fail_rate: float = typer.Option(
        0.0, "--undo-fail-rate", min=0.0, max=1.0, help="Chance an undo fails (--store only)."
    ),
    latency: float = typer.Option(
        0.0, "--latency", min=0.0, help="Simulated device seconds per action (--store only)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a random mix of procedures. With --store: on that store, SIGKILL-safe, resumed when run again.
    With --url: through that server's API (its devices, faults and latency; a new workload each run)."""
    exactly_one(store, url)
    spec = WorkloadSpec(
        txns=txns, seed=seed, fail_rate=fail_rate, undo_fail_rate=undo_fail_rate, latency=latency
    )

    def run(tick: Tick | None) -> dict[str, Any]:
        if store is not None:
            return run_workload(store, spec, progress=tick)
        from tropic.service.remote import open_client

        assert url is not None
        if undo_fail_rate or latency:
            raise InvalidArguments("--undo-fail-rate and --latency are the server's own with --url")
        with open_client(url, token) as client:
            return run_remote_workload(client, spec, progress=tick)

    if json_out:
        output.emit_json(run(None))
        return
    bar = Progress(
        TextColumn("workload"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=output.err_console,
    )
    task = bar.add_task("submit", total=txns)

    def tick(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()  # only once the store is open (or the server answered): a refusal is one line
        bar.update(task, completed=done)

    try:
        result = run(tick)
    finally:
        if bar.live.is_started:  # stopping one never started prints a blank line before the error
            bar.stop()
    if store is not None:
        output.console.print(f"resumed from request {result['resumed_from']}, all {txns} requests final")
    else:
        output.console.print(f"all {txns} requests final through {url}: {result['by_state']}")


def check_cmd(
    store: str = typer.Option(..., "--store", help="Store file to check (recovered first unless in use)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check a store: no duplicates, model == devices, no violation; exit 1 when it is not healthy.

    A store no process holds is recovered first (this process owns it meanwhile), and must then have
    nothing in flight. A store another process holds (e.g. `tropic serve`) is read read-only from one
    snapshot and nothing is run: its in-flight transactions are counted, and the resources they lock
    are left out of the comparison with the devices."""
    report = check_store(store)
    if json_out:
        output.emit_json(report)
    else:
        if report["read_only"]:
            holder = Holder.from_dict(report["holder"])
            who = holder.describe() if holder is not None else "another process"
            output.console.print(
                f"read-only: the store is in use by {who}; checked a snapshot, ran nothing",
                highlight=False,
                soft_wrap=True,
            )
        keys = ["submitted", "by_state", "in_flight", "duplicates", "consistent", "violations", "fenced"]
        for key in keys:
            output.console.print(f"{key}: {report[key]}")
        if report["read_only"]:
            output.console.print(f"busy (not compared): {len(report['busy'])} resource(s)")
        for d in report["differences"]:
            output.console.print(f"[red]difference[/] {d}")
    raise typer.Exit(0 if report["healthy"] else 1)
