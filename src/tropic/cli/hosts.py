"""``tropic host cordon|uncordon|drain|evacuate HOST``: the host lifecycle against a running server.

A thin shell over the server's transaction API: cordon and uncordon are one transaction each
(``cordon_host``, ``uncordon_host``); drain and evacuate cordon the host, then move every VM away with one
``migrate_vm`` transaction per VM (:func:`tropic.optimize.drain.drain`), printing a line per VM and a
summary. A dead host's VMs cannot be live-migrated: evacuate asks the server whether the host's device
answers (``GET /v1/host-liveness``) and, when it does not (or with ``--rebuild``, or when the host is
already declared failed), declares it failed and rebuilds each VM elsewhere (``rebuild_vm``). Exit status
0 when done, 1 when a VM could not move (or the transaction did not commit), 2 for bad input, 3 when the
server does not answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Json, Token, Url, _client
from tropic.cli.output import ExitCode
from tropic.optimize.drain import drain
from tropic.optimize.plan import PlannedStep
from tropic.service.remote import ApiRunner, fetch_model

if TYPE_CHECKING:
    from tropic.api.client import Client

app = typer.Typer(
    help="Host lifecycle: cordon (no new VMs), uncordon, drain and evacuate (move every VM away).",
    no_args_is_help=True,
    add_completion=False,
)

HostPath = Annotated[str, typer.Argument(help="The host's path, e.g. /compute/us-east/host-07.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for each transaction.")]


def _one(procedure: str, host: str, url: str, token: str | None, json_out: bool, timeout: float) -> None:
    with _client(url, token) as c:
        outcome = ApiRunner(c, timeout_s=timeout).run(PlannedStep(procedure, {"host": host}))
    if json_out:
        output.emit_json(outcome.to_dict())
    elif outcome.committed:
        output.console.print(f"{procedure} {host}: committed (transaction {outcome.txn_id})", highlight=False)
    else:
        output.err_console.print(
            f"{procedure} {host}: {outcome.state}: {outcome.error or 'not committed'}", highlight=False
        )
    raise typer.Exit(ExitCode.OK if outcome.committed else ExitCode.NOT_DONE)


@app.command("cordon")
def cordon_cmd(
    host: HostPath,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 120,
) -> None:
    """Refuse new VMs on HOST.

    One transaction; the Host.cordon_respected constraint enforces it. The VMs already there stay.
    Exit status 1 when it does not commit (e.g. HOST is already cordoned)."""
    _one("cordon_host", host, url, token, json_out, timeout)


@app.command("uncordon")
def uncordon_cmd(
    host: HostPath,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 120,
) -> None:
    """Accept new VMs on HOST again.

    Exit status 1 when it does not commit (e.g. HOST is not cordoned)."""
    _one("uncordon_host", host, url, token, json_out, timeout)


def _dead(c: Client, host: str, asked: bool) -> tuple[bool, str, bool | None]:
    """Whether to rebuild ``host``'s VMs rather than migrate them, why, and what its driver says."""
    info = c.host_liveness(host)
    alive = info.get("alive")
    if info.get("failed"):
        return True, "it is declared failed", alive
    if alive is False:
        return True, "its device does not answer", alive
    if asked:
        return True, "--rebuild", alive
    return False, "", alive


def _drain(
    host: str,
    scope: str | None,
    url: str,
    token: str | None,
    json_out: bool,
    timeout: float,
    *,
    detect: bool = False,
    rebuild: bool = False,
) -> None:
    alive: bool | None = None
    with _client(url, token) as c:

        def say(line: str) -> None:
            if not json_out:
                output.err_console.print(line, highlight=False)

        why = ""
        if detect:
            rebuild, why, alive = _dead(c, host, rebuild)
            if rebuild:
                say(f"{host} is dead ({why}): its VMs are rebuilt elsewhere from their volumes")
        report = drain(
            host,
            lambda: fetch_model(c, "/compute"),
            ApiRunner(c, timeout_s=timeout),
            scope=scope,
            progress=say,
            rebuild=rebuild,
            why=why,
        )
    result: dict[str, Any] = report.to_dict()
    if detect:
        result["alive"] = alive
    if json_out:
        output.emit_json(result)
    else:
        table = Table("VM", "rebuilt on" if report.mode == "rebuild" else "now on")
        for vm, dest in sorted(report.moved.items()):
            table.add_row(vm, dest)
        for vm, why in sorted(report.stuck.items()):
            table.add_row(vm, f"[red]not moved[/red]: {why}")
        if report.moved or report.stuck:
            output.console.print(table)
        verdict = "drained" if report.ok else f"not drained: {len(report.stuck)} VM(s) could not move"
        done = f"{len(report.moved)} rebuilt" if report.mode == "rebuild" else f"{len(report.moved)} moved"
        state = "declared failed and cordoned" if report.mode == "rebuild" else "cordoned"
        output.console.print(f"{host} {verdict}; {done}; the host stays {state}", highlight=False)
    raise typer.Exit(ExitCode.OK if report.ok else ExitCode.NOT_DONE)


@app.command("drain")
def drain_cmd(
    host: HostPath,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 900,
) -> None:
    """Cordon HOST, then move every VM to another host of its region.

    Targets are chosen together (best fit, within every constraint); each move is one migrate_vm
    transaction. HOST stays cordoned. Exit status 1 when some VM could not move (each is named with
    the reason)."""
    _drain(host, None, url, token, json_out, timeout)


@app.command("evacuate")
def evacuate_cmd(
    host: HostPath,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 900,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Treat HOST as dead: declare it failed (refused if its device answers) and rebuild its "
            "VMs elsewhere from their volumes instead of live-migrating them.",
        ),
    ] = False,
) -> None:
    """Like drain, but a VM may go to a host of any region.

    For a host that must be emptied now, where keeping VMs in their region matters less than moving
    them. When HOST is dead (its device does not answer, or it is declared failed) or with --rebuild,
    HOST is declared failed and each VM is rebuilt on its target from its volume (rebuild_vm), keeping
    its name, uid, size and address; the output says so ("mode": "rebuild" in --json). Exit status 1
    when some VM could not move."""
    _drain(host, "/compute", url, token, json_out, timeout, detect=True, rebuild=rebuild)
