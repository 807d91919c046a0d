"""``tropic bench``: throughput and latency of the embedded engine (figures go to docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

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


@app.command("scale")
def scale(
    hosts: int = typer.Option(225_000, "--hosts", min=1, help="Hosts in the big model."),
    vms: int = typer.Option(1_800_000, "--vms", min=0, help="VMs in the big model (each with its volume)."),
    baseline: int = typer.Option(1000, "--baseline-vms", min=1, help="VMs in the comparison model."),
    txns: int = typer.Option(5000, "--txns", min=1, help="spawn_vm transactions per model, all rounds."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Throughput rounds per model, alternating."),
    rate: float = typer.Option(500.0, "--rate", min=1e-3, help="Offered txn/s of the paced latency phase."),
    memory: bool = typer.Option(False, "--no-durability", help="Keep the store in memory (no fsync)."),
    no_freeze: bool = typer.Option(False, "--no-gc-freeze", help="Leave the model to the full GC passes."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Build a model of H hosts and V VMs: load time, resident memory, and spawn_vm throughput and p50
    at that size against a 1K-VM model of the same density (``ratio``)."""
    from tropic.replay.scale import ScaleSpec, run_scale_bench

    spec = ScaleSpec(
        hosts=hosts,
        vms=vms,
        baseline_vms=baseline,
        txns=txns,
        rounds=rounds,
        rate=rate,
        durable=not memory,
        freeze_gc=not no_freeze,
    )
    with output.err_console.status("building the models...") as status:
        result = run_scale_bench(spec, progress=lambda message: status.update(message))
    if json_out:
        output.emit_json(result)
        return
    big, base = result["scale"], result["baseline"]
    output.console.print(
        f"{hosts:,} hosts / {vms:,} VMs: built in {big['build_s']} s (+{big['store_init_s']} s store), "
        f"{big['rss_gib']} GiB resident; {big['throughput_txn_s']} txn/s vs {base['throughput_txn_s']} txn/s "
        f"at {baseline:,} VMs (ratio of medians {result['ratio']}); paced p50 "
        f"{big['paced_latency_ms']['p50']} ms vs {base['paced_latency_ms']['p50']} ms"
    )


@app.command("soak")
def soak(
    txns: int = typer.Option(100_000, "--txns", min=1, help="Transactions to run."),
    store: str | None = typer.Option(
        None, "--store", help="A fresh store's URI (default: a SQLite file in a temporary folder)."
    ),
    hosts: int = typer.Option(400, "--hosts", min=8, help="Hosts in the model."),
    slots: int = typer.Option(800, "--slots", min=1, help="VMs cycling spawn/migrate/resize/destroy."),
    slices: int = typer.Option(20, "--slices", min=1, help="Slices of the run reported."),
    retain: str | None = typer.Option(
        None,
        "--retain",
        help="Run a retention thread as a service does, e.g. '100K' (zk://: with --archive).",
    ),
    retain_interval: float = typer.Option(
        10.0, "--retain-interval", min=0.1, help="Seconds between retention passes (with --retain)."
    ),
    archive: Path | None = typer.Option(  # noqa: B008
        None,
        "--archive",
        help="Folder of the archive of --retain (default: <store>.archive; zk://: required).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A long run of spawn, migrate, resize and destroy at a constant model size: throughput, CPU and RSS per
    slice, ``throughput_last_over_first``, ``rss_growth_mib`` (after the first 100K) and ``store_bytes``."""
    from tropic.errors import TropicError
    from tropic.retention import Retention
    from tropic.scenario.soak import SoakSpec, run_soak

    try:
        policy = Retention.parse(retain) if retain is not None else None
        spec = SoakSpec(
            txns=txns,
            store=store,
            hosts=hosts,
            slots=slots,
            slices=slices,
            retain=policy,
            archive=archive,
            retain_interval=retain_interval,
        )
        with output.err_console.status("soaking...") as status:
            result = run_soak(spec, progress=lambda message: status.update(message))
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    if json_out:
        output.emit_json(result)
        return
    for row in result["slices"]:
        output.console.print(
            f"{row['txns_done']:>10,}  {row['throughput_txn_s']:>8} txn/s  {row['rss_mib']:>8} MiB"
        )
    output.console.print(
        f"throughput last/first {result['throughput_last_over_first']}, RSS growth "
        f"{result['rss_growth_mib']} MiB after {result['warmup_txns']:,}, store {result['store_bytes']} bytes"
    )
