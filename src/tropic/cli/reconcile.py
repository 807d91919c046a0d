"""``tropic drift``, ``tropic reload`` and ``tropic repair``: cross-layer consistency from the command line.

A thin shell over the server's ``/v1/drift``, ``/v1/reload`` and ``/v1/repair`` (same ``--url`` and
``--token`` as the other client commands): rich tables for people, ``--json`` for scripts. ``drift`` exits
1 when there is drift, ``reload`` and ``repair`` when some is left under the path (they did not do what was
asked); errors are one line on stderr (exit status 2, 3 when the server does not answer).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Json, Token, Url, _client
from tropic.cli.output import ExitCode

app = typer.Typer(add_completion=False)

Path = Annotated[str, typer.Argument(help="A resource path; its whole subtree is covered.")]


def _value(v: Any) -> str:
    if v is True:
        return "present"
    if v is False:
        return "absent"
    return str(v)


def _drift_table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("resource", overflow="fold")
    for col in ("attribute", "model", "device", "since", "fenced"):
        table.add_column(col)
    for d in items:
        owner = d.get("fenced_by")
        fenced = "" if owner is None else "drift" if owner == 0 else f"txn {owner}"
        since = time.strftime("%H:%M:%S", time.localtime(d["first_seen"]))
        note = f"\n[dim]{d['note']}[/]" if d.get("note") else ""
        table.add_row(
            d["path"], d["attribute"], _value(d["logical"]), _value(d["physical"]) + note, since, fenced
        )
    return table


@app.command("drift")
def drift_cmd(
    path: Path = "/",
    recorded: Annotated[
        bool, typer.Option("--recorded", help="Show what is recorded without reading the devices.")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """List where the devices differ from the model under PATH.

    Drifted resources are fenced until `tropic reload` or `tropic repair`. Exit status 0 when the devices
    match the model, 1 when there is drift, 2 when PATH is malformed or unknown."""
    with _client(url, token) as c:
        report = c.drift(path, scan=not recorded)
    if json_out:
        output.emit_json(report)
    elif report["items"]:
        output.console.print(_drift_table(report["items"], f"drift under {report['path']}"))
    else:
        output.console.print(f"no drift under {report['path']}: the devices match the model")
    raise typer.Exit(ExitCode.NOT_DONE if report["items"] else ExitCode.OK)


@app.command("reload")
def reload_cmd(path: Path, url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Make the model match the devices under PATH (device -> model) and lift the fences there.

    Exit status 0 when the model now matches the devices under PATH (nothing to reload included), 1 when
    some drift could not be reloaded (e.g. a device that does not answer; it stays fenced), 2 when PATH is
    malformed or unknown or the reload is refused (it would break a constraint)."""
    with _client(url, token) as c:
        result = c.reload(path)
    if json_out:
        output.emit_json(result)
    else:
        if result["changed"]:
            output.console.print(_drift_table(result["changed"], f"reloaded into the model under {path}"))
        else:
            output.console.print(f"nothing to reload under {path}")
        if result["skipped"]:
            output.console.print(_drift_table(result["skipped"], "not reloaded (still fenced)"))
        if result["unfenced"]:
            output.console.print(f"unfenced: {', '.join(result['unfenced'])}")
    # Skipped drift is drift left: the reload did not do what was asked.
    raise typer.Exit(ExitCode.NOT_DONE if result["skipped"] else ExitCode.OK)


@app.command("repair")
def repair_cmd(
    path: Path,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=600, help="Seconds to wait.")] = 60.0,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """Make the devices under PATH match the model (model -> device) with compensating transactions.

    The fences there are lifted once a fresh read shows them consistent. Exit status 0 when the devices
    under PATH now match the model, 1 when drift is left (a repair failed or --timeout ran out), 2 when
    PATH is malformed or unknown or the repair is refused."""
    with _client(url, token) as c:
        result = c.repair(path, timeout=timeout)
    if json_out:
        output.emit_json(result)
    else:
        if result["transactions"]:
            table = Table(title="repair transactions", title_justify="left", header_style="bold")
            for col in ("txn", "procedure", "args", "state"):
                table.add_column(col)
            for t in result["transactions"]:
                args = " ".join(f"{k}={v}" for k, v in t["args"].items())
                table.add_row(str(t["id"]), t["procedure"], args, t["state"])
            output.console.print(table)
        if result["remaining"]:
            output.console.print(_drift_table(result["remaining"], "drift left"))
        else:
            output.console.print(f"consistent: the devices under {path} match the model")
        if result["unfenced"]:
            output.console.print(f"unfenced: {', '.join(result['unfenced'])}")
    raise typer.Exit(ExitCode.OK if result["consistent"] else ExitCode.NOT_DONE)
