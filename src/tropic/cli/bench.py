"""``tropic bench``: throughput and latency of the embedded engine (figures go to docs/benchmarks.md)."""

from __future__ import annotations

import typer

from tropic.cli import output
from tropic.scenario.bench import BenchSpec, run_txn_bench

app = typer.Typer(help="Benchmarks of the embedded engine; print JSON with --json.", no_args_is_help=True)


@app.command("txn")
def txn(
    count: int = typer.Option(5000, "--count", min=1, help="spawn_vm transactions to run."),
    hosts: int = typer.Option(2500, "--hosts", min=1, help="Hosts in the generated model."),
    preload: int = typer.Option(0, "--preload-vms", min=0, help="VMs already in the model (scale)."),
    rate: float = typer.Option(
        0.0, "--rate", min=0.0, help="Offered load in txn/s (0: as fast as possible)."
    ),
    memory: bool = typer.Option(False, "--no-durability", help="Keep the store in memory (no fsync)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Durable spawn_vm transactions on a zero-latency sim: throughput and latency percentiles."""
    spec = BenchSpec(count=count, hosts=hosts, preload_vms=preload, rate=rate or None, durable=not memory)
    with output.err_console.status(f"running {count} spawn_vm transactions..."):
        result = run_txn_bench(spec)
    if json_out:
        output.emit_json(result)
        return
    lat = result["latency_ms"]
    output.console.print(
        f"{result['committed']} committed, {result['throughput_txn_s']} txn/s, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms ({result['txn_per_commit']} txn per fsync)"
    )
