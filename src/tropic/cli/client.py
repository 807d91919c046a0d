"""Remote commands of ``tropic``: ``submit``, ``plan``, ``txn list|show|watch``, ``tree``, ``kill``.

A thin shell over :class:`tropic.api.client.Client`: ``--url`` (``TROPIC_URL``) and ``--token``
(``TROPIC_TOKEN``, else the token file ``tropic serve`` generated) pick the server; ``--json`` prints the
API's JSON instead of tables. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tropic.api.defaults import DEFAULT_URL, default_token_file
from tropic.cli import output
from tropic.cli.output import ExitCode
from tropic.errors import InvalidArguments, TropicError
from tropic.records.states import FINAL

if TYPE_CHECKING:
    from tropic.api.client import Client

client_app = typer.Typer(add_completion=False)
txn_app = typer.Typer(help="List, show and watch transactions.", no_args_is_help=True, add_completion=False)
client_app.add_typer(txn_app, name="txn")

Url = Annotated[str, typer.Option("--url", envvar="TROPIC_URL", help="Server URL.", show_envvar=True)]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TROPIC_TOKEN",
        show_envvar=True,
        help="Bearer token (default: the token file written by `tropic serve`).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Assignments = Annotated[
    list[str] | None,
    typer.Argument(
        help="Arguments as key=value, each key once (typed by the procedure).", metavar="KEY=VALUE..."
    ),
]

FINAL_VALUES = frozenset(s.value for s in FINAL)
STATE_STYLE = {
    "COMMITTED": "bold green",
    "ABORTED": "bold red",
    "FAILED": "bold red",
    "KILLED": "yellow",
    "ROLLING_BACK": "yellow",
    "STARTED": "cyan",
    "SUBMITTED": "magenta",
    "DEFERRED": "magenta",
}


# --- plumbing ----------------------------------------------------------------------------------------------
def _token(token: str | None) -> str | None:
    if token:
        return token
    path = default_token_file()
    try:
        text = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    except OSError:
        text = ""
    return text or None


@contextmanager
def _client(url: str, token: str | None) -> Iterator[Client]:
    """A client; every tropic error inside becomes one line on stderr and an exit code."""
    from tropic.api.client import ApiError, Client, ServerUnreachable  # httpx loads only when needed

    try:
        c = Client(url, _token(token))
    except TropicError as e:  # a malformed --url
        output.fail(f"--url: {e.message}", code=output.exit_code(e))
    try:
        yield c
    except ServerUnreachable as e:
        output.fail(e, code=ExitCode.UNREACHABLE)
    except ApiError as e:
        hint = ""
        if e.status == 401:
            hint = " (pass --token or set TROPIC_TOKEN)"
        elif e.status == 403:
            hint = " (use a token with a higher role)"
        output.fail(
            f"{e.message}{hint}", code=ExitCode.BAD_INPUT if 400 <= e.status < 500 else ExitCode.NOT_DONE
        )
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    finally:
        c.close()


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _when(t: float | None) -> str:
    return "" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def _is_text(value: str) -> bool:
    """False for command-line bytes that were not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_args(items: list[str]) -> dict[str, str]:
    """``key=value`` items as text, typed by the server from the procedure's declared parameters (no
    extra request to learn them). A key given twice, or text that was not UTF-8, is refused here."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArguments(f"expected key=value, got {item!r}")
        if not _is_text(item):
            raise InvalidArguments(f"argument {key!a} is not valid UTF-8 text")
        if key in out:
            raise InvalidArguments(f"argument {key!r} is given twice")
        out[key] = raw
    return out


# --- rendering ---------------------------------------------------------------------------------------------
def _steps_table(detail: dict[str, Any]) -> Table:
    table = Table(title="steps on the devices", title_justify="left", expand=False)
    for col in ("#", "action", "resource", "status", "duration"):
        table.add_column(col)
    for s in detail["steps"]:
        label = f"undo {s['action']}" if s["undo"] else s["action"]
        style = "red" if s["status"] == "failed" else "yellow" if s["undo"] else ""
        table.add_row(
            str(s["index"]),
            Text(label, style=style),
            s["path"],
            s["status"],
            _duration(s["finished"] - s["started"]),
        )
    return table


def _detail_view(d: dict[str, Any]) -> Group:
    head = Text.assemble(
        (f"transaction {d['id']} ", "bold"), f"{d['procedure']} by {d['submitter']}: ", _state(d["state"])
    )
    if d.get("latency_s") is not None:
        head.append(f"  ({_duration(d['latency_s'])})")
    parts: list[Any] = [head, Text(f"args: {json.dumps(d['args'], sort_keys=True)}", style="dim")]
    start = d["times"].get("SUBMITTED")
    stamps = sorted(d["times"].items(), key=lambda kv: kv[1])
    if start is not None:
        parts.append(Text("  ".join(f"{s} +{_duration(at - start)}" for s, at in stamps), style="dim"))
    if d["actions"]:
        log = Table(title="action log", title_justify="left")
        for col in ("#", "action", "resource", "undo"):
            log.add_column(col)
        for i, a in enumerate(d["actions"]):
            log.add_row(str(i), a["action"], a["path"], f"{a['undo']['action']} {a['undo']['path']}")
        parts.append(log)
    if d["steps"]:
        parts.append(_steps_table(d))
    err = d.get("error")
    if err:
        where = f" [{err['path']}]" if err.get("path") else ""
        parts.append(Text(f"error {err['code']}: {err['message']}{where}", style="red"))
        if err.get("undo_error"):
            parts.append(Text(f"undo failed: {err['undo_error'].get('message')}", style="red"))
    for v in d["violations"]:
        parts.append(Text(f"violated {v['constraint']} on {v['path']}: {v['message']}", style="yellow"))
    if d["left_behind"]:
        parts.append(Text(f"left behind and fenced: {', '.join(d['left_behind'])}", style="red"))
    return Group(*parts)


def _summary_table(items: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("id", "procedure", "state", "submitter", "submitted", "duration", "error"):
        table.add_column(col)
    for t in items:
        err = t.get("error") or {}
        table.add_row(
            str(t["id"]),
            t["procedure"],
            _state(t["state"]),
            t["submitter"],
            _when(t.get("submitted_at")),
            _duration(t.get("latency_s")),
            str(err.get("message", ""))[:80],
        )
    return table


def _finish(detail: dict[str, Any]) -> None:
    raise typer.Exit(ExitCode.OK if detail["state"] == "COMMITTED" else ExitCode.NOT_DONE)


def _follow(
    c: Client, txn_id: int, render: Callable[[dict[str, Any]], None], timeout: float | None
) -> dict[str, Any]:
    """Poll one transaction, calling ``render`` at every change, until it is final."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[str, int] | None = None
    while True:
        d = c.transaction(txn_id)
        key = (d["state"], len(d["steps"]))
        if key != last:
            render(d)
            last = key
        if d["state"] in FINAL_VALUES:
            return d
        if deadline is not None and time.monotonic() > deadline:
            output.fail(
                f"transaction {txn_id} still {d['state']} after {timeout:g} s (it goes on; "
                f"`tropic txn watch {txn_id}` follows it)",
                code=ExitCode.TIMEOUT,
            )
        time.sleep(0.15)


def _watch(c: Client, txn_id: int, as_json: bool, timeout: float | None) -> dict[str, Any]:
    if as_json:

        def line(d: dict[str, Any]) -> None:
            summary = {k: d[k] for k in ("id", "procedure", "state", "latency_s", "error")}
            summary["steps"] = len(d["steps"])
            sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
            sys.stdout.flush()

        return _follow(c, txn_id, line, timeout)
    with Live(console=output.console, refresh_per_second=8, transient=False) as live:
        return _follow(c, txn_id, lambda d: live.update(_detail_view(d)), timeout)


# --- commands ----------------------------------------------------------------------------------------------
@client_app.command()
def submit(
    procedure: Annotated[str, typer.Argument(help="A registered procedure (see `tropic procedures`).")],
    args: Assignments = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the transaction until it is final.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait (with --wait); then exit 124.")
    ] = 300.0,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Submit a procedure as a transaction, e.g. `tropic submit spawn_vm host=/compute/us-east/host-01 ...`.

    With --wait (the default): exit status 0 when it commits, 1 when it ends otherwise, 124 when --timeout
    runs out first (the transaction goes on). Without: 0 once it is accepted. 2 when it is refused."""
    with _client(url, token) as c:
        accepted = c.submit(procedure, parse_args(args or []), text_args=True)
        if not wait:
            if as_json:
                output.emit_json(accepted)
            else:
                output.console.print(f"transaction {accepted['id']} submitted ({accepted['state']})")
            return
        if not as_json:
            output.console.print(f"transaction {accepted['id']} submitted", highlight=False)
        detail = _watch(c, accepted["id"], as_json, timeout)
    _finish(detail)


@client_app.command()
def plan(
    procedure: Annotated[str, typer.Argument(help="A registered procedure.")],
    args: Assignments = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Dry-run a procedure: the action log apply would run, and any violated constraint. Changes nothing.

    Exit status 0 when apply would go ahead, 1 when the plan would be refused, 2 for a bad call."""
    with _client(url, token) as c:
        result = c.plan(procedure, parse_args(args or []), text_args=True)
    if as_json:
        output.emit_json(result)
    else:
        table = Table(title=f"plan of {procedure}", title_justify="left")
        for col in ("#", "action", "resource", "undo"):
            table.add_column(col)
        for i, a in enumerate(result["actions"]):
            table.add_row(str(i), a["action"], a["path"], f"{a['undo']['action']} {a['undo']['path']}")
        output.console.print(table)
        for v in result["violations"]:
            output.console.print(f"[yellow]violates[/] {v['constraint']} on {v['path']}: {v['message']}")
        if result.get("error"):
            e = result["error"]
            output.console.print(f"[red]error[/] {e['code']}: {e['message']}")
        output.console.print("[green]ok: apply would go ahead[/]" if result["ok"] else "[red]refused[/]")
    raise typer.Exit(ExitCode.OK if result["ok"] else ExitCode.NOT_DONE)


@client_app.command()
def kill(
    txn_id: Annotated[int, typer.Argument(help="Transaction id.", metavar="ID")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Kill a transaction that is not final yet (a running one is rolled back).

    Exit status 0 when the kill is requested, 2 when the transaction is unknown or already final."""
    with _client(url, token) as c:
        result = c.kill(txn_id)
    if as_json:
        output.emit_json(result)
    else:
        output.console.print(f"kill requested for transaction {txn_id} (was {result['state']})")


@client_app.command()
def tree(
    path: Annotated[str, typer.Argument(help="Resource path, e.g. /compute/us-east (no . or ..).")] = "/",
    depth: Annotated[
        int, typer.Option("--depth", min=0, max=64, help="Levels of children (4 reaches the VMs from /).")
    ] = 4,
    hide_vms: Annotated[
        bool, typer.Option("--hide-vms", help="Leave VMs out (a host shows how many it runs).")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Show a subtree of the logical model with kinds and attributes, VMs included (down to /compute/
    <region>/<host>/<vm> from the root). A large model is cut at the server's node limit: ask for a
    deeper path, a smaller --depth, or --hide-vms.

    Exit status 2 when the path is malformed or names no resource."""
    with _client(url, token) as c:
        node = c.resources(path, depth=depth)
    if hide_vms:
        _drop_vms(node)
    if as_json:
        output.emit_json(node)
        return

    def label(n: dict[str, Any]) -> Text:
        attrs = ", ".join(f"{k}={v}" for k, v in n["attrs"].items() if v not in ("", [], {}, None))
        more = f" (+{n['child_count']})" if n["children"] is None and n["child_count"] else ""
        if n.get("hidden_vms"):
            more += f" ({n['hidden_vms']} VMs)"
        return Text.assemble((n["name"], "bold"), f" {n['kind']}", (f" {attrs}", "dim"), more)

    def add(branch: Tree, n: dict[str, Any]) -> None:
        for child in n["children"] or []:
            add(branch.add(label(child)), child)

    root = Tree(label(node))
    add(root, node)
    output.console.print(root)
    if node.get("truncated"):
        output.console.print("[yellow](truncated: ask for a smaller depth, a deeper path, or --hide-vms)[/]")


def _drop_vms(node: dict[str, Any]) -> None:
    """Remove VM nodes from a subtree (counting them on their host as ``hidden_vms``)."""
    kids = node.get("children")
    if kids is None:
        if node.get("kind") == "host" and node.get("child_count"):
            node["hidden_vms"] = node["child_count"]
        return
    vms = [k for k in kids if k.get("kind") == "vm"]
    if vms:
        node["hidden_vms"] = len(vms)
        node["children"] = [k for k in kids if k.get("kind") != "vm"]
    for k in node["children"]:
        _drop_vms(k)


@client_app.command()
def procedures(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """The procedures the server can run, with their arguments."""
    with _client(url, token) as c:
        procs = c.procedures()
    if as_json:
        output.emit_json(procs)
        return
    table = Table()
    for col in ("procedure", "arguments", "description"):
        table.add_column(col)
    for p in procs:
        params = " ".join(f"{x['name']}:{x['type']}" + ("" if x["required"] else "?") for x in p["params"])
        table.add_row(p["name"], params, p["doc"].split("\n")[0])
    output.console.print(table)


@txn_app.command("list")
def txn_list(
    state: Annotated[str | None, typer.Option("--state", help="Only this state, e.g. COMMITTED.")] = None,
    procedure: Annotated[str | None, typer.Option("--procedure", help="Only this procedure.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Page size.")] = 50,
    before: Annotated[int | None, typer.Option("--before", help="Only ids below this (next page).")] = None,
    path: Annotated[
        str | None, typer.Option("--path", help="Only those that touched this resource (or its subtree).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Submitted at or after (ISO 8601 or epoch seconds)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Submitted before (ISO 8601 or epoch seconds).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Transactions, newest first, live or final, filtered by state, procedure, resource path and
    submission time; --before pages through older ones."""
    after, below = _instant(since, "--since"), _instant(until, "--until")
    with _client(url, token) as c:
        page = c.transactions(
            state=state.upper() if state else None,
            procedure=procedure,
            limit=limit,
            before=before,
            path=path,
            since=after,
            until=below,
        )
    if as_json:
        output.emit_json(page)
        return
    output.console.print(_summary_table(page["items"]))
    if page["next_before"] is not None:
        output.console.print(f"[dim]more: --before {page['next_before']}[/]")


def _instant(text: str | None, option: str) -> float | None:
    """Seconds since the epoch from an ISO 8601 time (UTC unless it names its zone) or a number."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an ISO 8601 time nor seconds since the epoch", param_hint=option
        ) from None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


@txn_app.command("show")
def txn_show(
    txn_id: Annotated[int, typer.Argument(help="Transaction id.", metavar="ID")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """One transaction: states and timings, action log, per-step outcomes, error or violation."""
    with _client(url, token) as c:
        detail = c.transaction(txn_id)
    if as_json:
        output.emit_json(detail)
    else:
        output.console.print(_detail_view(detail))


@txn_app.command("watch")
def txn_watch(
    txn_id: Annotated[
        int | None, typer.Argument(help="Transaction id (none: every transaction).", metavar="[ID]")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0, help="Give up after this many seconds (with ID: exit 124; without: stop)."
        ),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: Json = False,
) -> None:
    """Follow one transaction live until it is final, or, without ID, every transaction's state changes
    until interrupted or --timeout (--json: one JSON object a line).

    With ID: exit status 0 when it commits, 1 when it ends otherwise, 124 when --timeout runs out first."""
    with _client(url, token) as c:
        if txn_id is not None:
            detail = _watch(c, txn_id, as_json, timeout)
        else:
            _watch_all(c, as_json, timeout)
            return
    _finish(detail)


def _watch_all(c: Client, as_json: bool, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    latest: dict[int, dict[str, Any]] = {t["id"]: t for t in c.transactions(limit=20)["items"]}

    def view() -> Table:
        items = sorted(latest.values(), key=lambda t: -int(t["id"]))[:20]
        return _summary_table(items, title="transactions (live; Ctrl-C to stop)")

    live = None if as_json else Live(view(), console=output.console, refresh_per_second=4)
    try:
        if live is not None:
            live.start()
        for ev in c.events():
            if deadline is not None and time.monotonic() > deadline:
                break
            if ev.kind != "transaction":
                continue
            t = ev.data["txn"]
            if as_json:
                sys.stdout.write(json.dumps({"event": ev.id, **t}, sort_keys=True) + "\n")
                sys.stdout.flush()
            else:
                latest[int(t["id"])] = t
                assert live is not None
                live.update(view())
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
