"""``tropic inventory check|plan|apply|export``: the declarative inventory file (docs/inventory.md).

``plan`` compares a file with a running server's model and prints the difference per resource (``+`` add,
``~`` change, ``-`` remove); ``apply`` makes it, one transaction per change (additions top-down, removals
bottom-up), and stops at the first that does not commit, saying which and why.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Json, Token, Url, _client
from tropic.cli.output import ExitCode
from tropic.inventory import Change, load

app = typer.Typer(
    help=(
        "The declarative inventory file: discover one from hypervisors, check it, plan and apply it "
        "against a server, export one."
    ),
    no_args_is_help=True,
    add_completion=False,
)

File = Annotated[Path, typer.Argument(help="Inventory file (*.toml, *.yaml or *.yml).", dir_okay=False)]
Vms = Annotated[
    bool,
    typer.Option(
        "--vms", help="Also spawn, resize, move, start/stop and destroy VMs to match the file's vms."
    ),
]
STYLE = {"+": "green", "~": "yellow", "-": "red"}
PLAN_EXIT_HELP = (
    "Exit status 0 when apply would change nothing (differences it does not make may be listed), 1 when it "
    "would change something, 2 bad file or refused, 3 server unreachable."
)


def _line(c: Change) -> Text:
    text = Text(f"{c.op} ", style=STYLE[c.op])
    text.append(c.path, style="bold")
    if c.op == "+":
        text.append(f" ({c.detail})")
    elif c.op == "~":
        text.append(f" {c.detail}")
    if c.note:
        text.append(f"   (not applied: {c.note})", style="dim")
    return text


def _summary(changes: list[Change]) -> str:
    count = {op: sum(1 for c in changes if c.op == op and c.applicable) for op in "+~-"}
    skipped = sum(1 for c in changes if not c.applicable)
    out = f"Plan: {count['+']} to add, {count['~']} to change, {count['-']} to remove."
    return out + (f" {skipped} not applied." if skipped else "")


def _show(changes: list[Change]) -> None:
    if not changes:
        output.console.print("No changes: the server matches the file.", highlight=False)
        return
    for c in changes:
        output.console.print(_line(c), highlight=False, soft_wrap=True)
    output.console.print(_summary(changes), highlight=False)


@app.command("check")
def check_cmd(file: File, json_out: Json = False) -> None:
    """Read and check a file offline: every problem is printed as FILE:LINE: FIELD: why. Exit 0 when it is
    valid, 2 when it is not."""
    inv = load(file)
    f = inv.fleet
    counts = {
        "regions": len(f.regions),
        "hosts": len(f.hosts),
        "storage": len(f.storage),
        "networks": len(f.networks),
        "vms": len(f.vms),
    }
    if json_out:
        output.emit_json({"file": str(file), "valid": True, **counts})
    else:
        shown = ", ".join(f"{n} {k}" for k, n in counts.items())
        output.console.print(f"{file}: valid ({shown})", highlight=False)


@app.command("plan", epilog=PLAN_EXIT_HELP)
def plan_cmd(
    file: File, url: Url = DEFAULT_URL, token: Token = None, vms: Vms = False, json_out: Json = False
) -> None:
    """Show what `apply` would change on the server to match the file (nothing is changed)."""
    from tropic.inventory.remote import plan

    inv = load(file)
    with _client(url, token) as c:
        changes = plan(c, inv, vms=vms)
    if json_out:
        output.emit_json({"file": str(file), "changes": [c.to_dict() for c in changes]})
    else:
        _show(changes)
    raise typer.Exit(ExitCode.NOT_DONE if any(ch.applicable for ch in changes) else ExitCode.OK)


@app.command("apply")
def apply_cmd(
    file: File,
    url: Url = DEFAULT_URL,
    token: Token = None,
    vms: Vms = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each transaction.")
    ] = 300.0,
    json_out: Json = False,
) -> None:
    """Make the server's model match the file: one transaction per change, additions top-down, removals
    bottom-up; stop at the first transaction that does not commit.

    Exit status 0 when every change committed (changes the inventory does not make are listed), 1 when a
    transaction did not commit (which, and why), 2 bad file or refused, 124 a transaction outlived
    --timeout."""
    from tropic.inventory.remote import Step, apply, plan

    inv = load(file)
    with _client(url, token) as c:
        changes = plan(c, inv, vms=vms)
        todo = [ch for ch in changes if ch.applicable]
        if not json_out:
            _show(changes)
        if todo and not yes:
            if json_out or not sys.stdin.isatty():
                output.fail(f"{len(todo)} change(s) to apply: pass --yes to apply them without asking")
            if not typer.confirm("Apply these changes?", default=False):
                raise typer.Exit(ExitCode.NOT_DONE)

        def progress(step: Step) -> None:
            if json_out:
                return
            ok = step.state == "COMMITTED"
            mark = Text("ok  " if ok else "FAIL", style="green" if ok else "bold red")
            output.console.print(
                Text.assemble(mark, f" {step.call.procedure} {step.change.path} (transaction {step.txn})"),
                highlight=False,
                soft_wrap=True,
            )

        try:
            outcome = apply(c, changes, timeout=timeout, progress=progress)
        except TimeoutError as e:
            output.fail(str(e), code=ExitCode.TIMEOUT)
    failed = outcome.failed
    if json_out:
        output.emit_json(
            {"file": str(file), "changes": [ch.to_dict() for ch in changes], **outcome.to_dict()}
        )
    elif failed is not None:
        err = failed.error or {}
        output.err_console.print(
            Text.assemble(
                ("error:", "bold red"),
                f" transaction {failed.txn} ({failed.call.procedure} {failed.change.path}) {failed.state}: "
                f"{err.get('message', 'no reason given')}; the changes after it were not applied",
            ),
            highlight=False,
            soft_wrap=True,
        )
    elif todo:
        output.console.print(f"Applied {len(outcome.steps)} transaction(s).", highlight=False)
    raise typer.Exit(ExitCode.NOT_DONE if failed is not None else ExitCode.OK)


@app.command("export")
def export_cmd(
    url: Url = DEFAULT_URL,
    token: Token = None,
    fmt: Annotated[str, typer.Option("--format", help="toml or yaml.")] = "toml",
) -> None:
    """Print the server's fleet as an inventory file (a start for one, or a record of what it manages)."""
    from tropic.errors import InvalidArguments
    from tropic.inventory import dumps, fleet_of_tree
    from tropic.inventory.remote import fetch_tree

    if fmt not in ("toml", "yaml"):
        raise InvalidArguments(f"--format must be toml or yaml, not {fmt!r}")
    with _client(url, token) as c:
        tree = fetch_tree(c)
    sys.stdout.write(dumps(fleet_of_tree(tree), fmt))
