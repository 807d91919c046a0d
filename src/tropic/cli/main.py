"""The ``tropic`` command. Sub-commands live in sibling modules; this module wires them and formats errors."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tropic import __version__
from tropic.cli import (
    autopilot,
    autopilot_bench,
    autopilot_kb,
    bench,
    discover,
    embedded,
    geo,
    ha,
    hosts,
    inventory,
    jobs,
    optimize,
    output,
    reconcile,
    replay,
    sun,
    worker,
)
from tropic.cli.client import client_app
from tropic.cli.output import EXIT_CODES_HELP, ExitCode
from tropic.cli.serve import serve_app
from tropic.cli.views import views_app
from tropic.errors import TropicError

app = typer.Typer(
    name="tropic",
    help="Safe, self-managing cloud orchestration: every procedure is an ACID transaction.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        output.console.print(f"tropic {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """tropic: procedures on cloud resources as ACID transactions, placement by a solver."""


# --- sub-command groups (one line each) ---
app.add_typer(serve_app)  # serve
app.add_typer(client_app)  # submit, plan, txn list|show|watch, tree, kill, procedures
app.add_typer(views_app)  # get vms|hosts|regions, describe
app.command("run-workload")(embedded.run_workload_cmd)
app.command("check")(embedded.check_cmd)
app.add_typer(bench.app, name="bench")
app.add_typer(optimize.app, name="optimize")
app.command("worker")(worker.worker_cmd)  # distributed mode: a worker process
app.add_typer(reconcile.app)  # drift, reload, repair
app.command("replay")(replay.replay_cmd)  # trace replay, --sweep
app.add_typer(hosts.app, name="host")  # host cordon|uncordon|drain|evacuate
app.add_typer(jobs.app, name="job")  # job create|delete|list|show (replicated jobs)
app.add_typer(ha.app, name="ha")  # ha bench
autopilot_kb.register(autopilot.app)  # autopilot observations
autopilot_bench.register(autopilot.app)  # autopilot bench
app.add_typer(autopilot.app, name="autopilot")  # status|decisions|pause|resume|run-once|observations|bench
discover.register(inventory.app)  # inventory discover
app.add_typer(inventory.app, name="inventory")  # check, plan, apply, export, discover
geo.register(app)  # image list|versions|publish|gc, member list|migrate
app.command("sun")(sun.sun_cmd)  # follow the sun: static vs dynamic placement over a day


@app.command()
def demo(
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary instead of the tour."),
    driver: str = typer.Option(
        "sim", "--driver", help="Device backend: sim, or a driver URI (e.g. libvirt)."
    ),
    latency: float = typer.Option(0.05, "--latency", help="Simulated seconds per device action (sim only)."),
) -> None:
    """Run the main scenario on a generated datacenter (spawn, migrate, plan, refusals, rollback).

    Exit status 1 when the tour ends inconsistent or with orphans."""
    from tropic.scenario.demo import Demo, open_demo_driver

    model, dev = open_demo_driver(driver, latency)
    result = Demo(None if json_out else output.console, driver=dev, latency=latency, model=model).run()
    if json_out:
        output.emit_json(result.summary)
    ok = result.summary["consistent"] and result.summary["orphans"] == 0
    raise typer.Exit(ExitCode.OK if ok else ExitCode.NOT_DONE)


def undecodable(argv: list[str]) -> str | None:
    """The first argument that was not valid UTF-8 (Python keeps such bytes as lone surrogates), shown
    with its bytes escaped; None when all are text."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            return repr(raw)[1:]  # b'...' without the b: the text, undecodable bytes as \xNN
    return None


def main() -> None:
    """Entry point: every error becomes one clear line on stderr and an exit status from the table in
    :class:`tropic.cli.output.ExitCode`, never a traceback."""
    bad = undecodable(sys.argv[1:])
    if bad is not None:
        output.fail(f"argument {bad} is not valid UTF-8 text", code=ExitCode.BAD_INPUT)
    try:
        app(prog_name="tropic")
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    except OSError as e:
        # A file the command needs cannot be made or opened (e.g. a store whose parent is a file).
        where = f"{e.filename}: " if e.filename else ""
        output.fail(f"{where}{e.strerror or e}", code=ExitCode.NOT_DONE)
    except KeyboardInterrupt:
        output.fail("interrupted", code=ExitCode.INTERRUPTED)
