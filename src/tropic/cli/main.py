"""The ``tropic`` command. Sub-commands live in sibling modules; this module wires them and formats errors."""

from __future__ import annotations

import typer

from tropic.cli import bench, embedded, optimize, output, reconcile, replay, worker
from tropic.cli.client import client_app
from tropic.cli.serve import serve_app
from tropic.errors import TropicError

app = typer.Typer(
    name="tropic",
    help="Safe, self-managing cloud orchestration: every procedure is an ACID transaction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root() -> None:
    """tropic: procedures on cloud resources as ACID transactions, placement by a solver."""


# --- sub-command groups (one line each) ---
app.add_typer(serve_app)  # serve
app.add_typer(client_app)  # submit, plan, txn list|show|watch, tree, kill, procedures
app.command("run-workload")(embedded.run_workload_cmd)
app.command("check")(embedded.check_cmd)
app.add_typer(bench.app, name="bench")
app.add_typer(optimize.app, name="optimize")
app.command("worker")(worker.worker_cmd)  # distributed mode: a worker process
app.add_typer(reconcile.app)  # drift, reload, repair
app.command("replay")(replay.replay_cmd)  # trace replay, --sweep


@app.command()
def demo(
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of the tour."),
    driver: str = typer.Option(
        "sim", "--driver", help="Device backend: sim, or a driver URI (e.g. libvirt)."
    ),
    latency: float = typer.Option(0.05, "--latency", help="Simulated seconds per device action (sim only)."),
) -> None:
    """Run the main scenario on a generated datacenter (spawn, migrate, plan, refusals, rollback)."""
    from tropic.scenario.demo import Demo, open_demo_driver

    model, dev = open_demo_driver(driver, latency)
    result = Demo(None if json_out else output.console, driver=dev, latency=latency, model=model).run()
    if json_out:
        output.emit_json(result.summary)
    ok = result.summary["consistent"] and result.summary["orphans"] == 0
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    """Entry point: every tropic error becomes one clear line on stderr and a non-zero exit."""
    try:
        app()
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    except KeyboardInterrupt:
        output.fail("interrupted", code=130)
