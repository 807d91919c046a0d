"""``tropic ha``: application high availability; ``tropic ha bench`` measures a replicated job under kills."""

from __future__ import annotations

import shlex

import typer

from tropic.cli import output
from tropic.cli.output import EXIT_CODES_HELP, ExitCode
from tropic.errors import TropicError

app = typer.Typer(
    help="Highly available applications: replicated jobs whose requests are ordered through ZooKeeper.",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
)


@app.command("bench")
def bench_cmd(
    replicas: int = typer.Option(3, "--replicas", help="Replicas of the KV job."),
    duration: float = typer.Option(60.0, "--duration", help="Seconds of load on the replicated job."),
    kill_every: float = typer.Option(10.0, "--kill-every", help="Kill a random replica every this many s."),
    kill: str = typer.Option(
        "process", "--kill", help="process: the replica's process; host: power off its simulated host."
    ),
    clients: int = typer.Option(4, "--clients", help="Closed-loop clients (each one request at a time)."),
    keys: int = typer.Option(50, "--keys", help="Keys the load spreads over."),
    write_ratio: float = typer.Option(0.5, "--write-ratio", help="Share of requests that are appends."),
    baseline_duration: float | None = typer.Option(
        None, "--baseline-duration", help="Seconds of the unreplicated run (default: min(duration, 10))."
    ),
    program: str | None = typer.Option(
        None, "--program", help="The KV program's command line (default: python3 examples/ha/kv.py)."
    ),
    domain: str = typer.Option(
        "host", "--domain", help="Failure domain of the replicas: host, rack, region."
    ),
    check_timeout: float = typer.Option(
        300.0, "--check-timeout", help="Seconds the linearizability checker may take (then: unknown)."
    ),
    attempt_timeout: float = typer.Option(
        1.0,
        "--attempt-timeout",
        help="The clients' first per-replica attempt timeout in s (doubled each round over the replicas).",
    ),
    read_path: str = typer.Option(
        "log",
        "--read-path",
        help="How the replicas answer the linearizable gets: log (appended to the log like a write; the "
        "default, strictly linearizable) or sync (ZooKeeper sync, then the local state once the log's tail "
        "is applied; faster, with ZooKeeper's sync caveat, see docs/ha.md).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the load and of the choice of victims."),
    zk: str = typer.Option(
        "",
        "--zk",
        help="Use this ZooKeeper (zk://hosts/chroot, a chroot of its own) instead of starting one.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Run the KV example as a replicated job (its own 3-server ZooKeeper ensemble, a controller on the
    sim, the healer replacing dead replicas) under a closed-loop load, kill a random replica (or its
    host) every --kill-every seconds, then read every acknowledged write back and check the whole history
    for linearizability. Also runs the same load on the program alone (the baseline). Progress goes to
    stderr. Exit status 0 when nothing acknowledged was lost and the history is linearizable, 1 otherwise
    (or when the bench could not finish), 2 on bad input."""
    from tropic.ha.bench import BenchSpec
    from tropic.scenario.ha_bench import run_bench

    try:
        argv = tuple(shlex.split(program)) if program else ()
        if program is not None and not argv:
            output.fail("--program is empty")
        spec = BenchSpec(
            replicas=replicas,
            duration=duration,
            kill_every=kill_every,
            kill=kill,  # type: ignore[arg-type]  # validated by BenchSpec.validate
            clients=clients,
            keys=keys,
            write_ratio=write_ratio,
            baseline_duration=baseline_duration,
            program=argv,
            failure_domain=domain,
            check_timeout=check_timeout,
            seed=seed,
            attempt_timeout=attempt_timeout,
            zk_uri=zk,
            read_path=read_path,  # type: ignore[arg-type]  # validated by BenchSpec.validate
        )

        def say(message: str) -> None:
            output.err_console.print(message, highlight=False, soft_wrap=True)

        data = run_bench(spec, say)
    except ValueError as e:  # shlex: an unbalanced quote
        output.fail(f"--program: {e}")
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    if json_out:
        output.emit_json(data)
    else:
        base = data["baseline"]
        output.console.print(
            f"replicated ({data['read_path']} reads): {data['throughput']} req/s, "
            f"p50 {data['p50_ms']} ms, p99 {data['p99_ms']} ms\n"
            f"alone:      {base['throughput']} req/s, p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms "
            f"(overhead x{data['overhead_ratio']})\n"
            f"max unavailability {data['max_unavailability_s']} s, lost acknowledged writes "
            f"{data['lost_acknowledged_writes']}, linearizable {data['linearizable']}, "
            f"replacements {len(data['replacements'])}",
            highlight=False,
        )
    good = data["lost_acknowledged_writes"] == 0 and data["linearizable"] is True
    raise typer.Exit(ExitCode.OK if good else ExitCode.NOT_DONE)
