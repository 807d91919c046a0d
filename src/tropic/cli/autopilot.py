"""``tropic autopilot status|decisions|pause|resume|run-once``: the autopilot from the command line.

A thin shell over the server's ``/v1/autopilot/...`` (same ``--url`` and ``--token`` as the other client
commands): tables for people, ``--json`` for scripts. Exit status 0; 1 when the autopilot is not enabled
on the server (``status``, ``decisions``) or a ``run-once`` step did not commit; errors are one line on
stderr (2; 3 when the server does not answer). Other commands (``tropic autopilot bench``, the knowledge
base's queries) register themselves into :data:`app`.
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

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The autopilot: its status and decision log; pause, resume, or run one pass now.",
)


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _steps(d: dict[str, Any]) -> str:
    parts = []
    for s in d.get("steps", []):
        args = s["args"]
        what = f"{args['vm']} -> {args['dest']}" if s["procedure"] == "migrate_vm" else str(args)
        txn = f" txn {s['txn']}" if s.get("txn") is not None else ""
        parts.append(f"{s['procedure']} {what}: {s['state']}{txn}")
    return "\n".join(parts) or "-"


def _table(decisions: list[dict[str, Any]]) -> Table:
    table = Table(title="autopilot decisions (oldest first)", title_justify="left", header_style="bold")
    for col in ("pass", "at", "trigger", "policy", "status", "gain/cost", "transactions", "why"):
        table.add_column(col, overflow="fold")
    for d in decisions:
        why = d["why"] + ("".join(f"\n[dim]held: {h}[/]" for h in d.get("held", [])))
        stale = d.get("stale") or []
        if stale:
            why += f"\n[dim]stale (left alone): {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}[/]"
        table.add_row(
            d["pass_id"],
            _when(d["at"]),
            d["trigger"],
            d["policy"],
            d["status"],
            f"{d['gain']:.3g}/{d['cost']:.3g}",
            _steps(d),
            why,
        )
    return table


@app.command("status")
def status_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Whether the autopilot runs on the server, paused or not, its policies, guards and last decision.

    Exit status 0 when it is enabled, 1 when the server runs without --autopilot."""
    with _client(url, token) as c:
        st = dict(c._json("GET", "/v1/autopilot/status"))
    if json_out:
        output.emit_json(st)
    elif not st.get("enabled"):
        output.console.print(st.get("why", "the autopilot is not enabled"))
    else:
        g = st["guards"]
        state = "paused" if st["paused"] else "running" if st["running"] else "stopped"
        output.console.print(
            f"autopilot {state}: policies {', '.join(st['policies'])}, every {st['interval_s']:g} s"
            f"{', dry run' if st['dry_run'] else ''}\n"
            f"  guards: {g['budget_per_pass']} migrations/pass, {g['per_vm_per_day']} per VM per day, "
            f"hysteresis x{g['hysteresis']:g}, cool-down {g['cooldown_s']:g} s\n"
            f"  passes: {st['passes']}, last at {_when(st['last_pass_at'])}"
        )
        last = st.get("last_decision")
        if last:
            output.console.print(f"  last decision: {last['policy']} {last['status']}: {last['why']}")
    raise typer.Exit(ExitCode.OK if st.get("enabled") else ExitCode.NOT_DONE)


@app.command("decisions")
def decisions_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N decisions.")] = 20,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """The autopilot's decision log: each pass's policy, gain and cost, transactions and outcomes, and why
    it did nothing when it did nothing. Exit status 1 when the autopilot is not enabled."""
    with _client(url, token) as c:
        body = dict(c._json("GET", "/v1/autopilot/decisions", params={"limit": str(limit)}))
    if json_out:
        output.emit_json(body)
    elif not body.get("enabled"):
        output.console.print("the autopilot is not enabled on this server")
    elif not body["decisions"]:
        output.console.print("no decision yet")
    else:
        output.console.print(_table(body["decisions"]))
    raise typer.Exit(ExitCode.OK if body.get("enabled") else ExitCode.NOT_DONE)


def _post(action: str, url: str, token: str | None) -> dict[str, Any]:
    with _client(url, token) as c:
        return dict(c._json("POST", f"/v1/autopilot/{action}"))


@app.command("pause")
def pause_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Stop the periodic and event-triggered passes (run-once still runs one). Operator role."""
    body = _post("pause", url, token)
    output.emit_json(body) if json_out else output.console.print("autopilot paused")


@app.command("resume")
def resume_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Run passes again after a pause. Operator role."""
    body = _post("resume", url, token)
    output.emit_json(body) if json_out else output.console.print("autopilot resumed")


@app.command("run-once")
def run_once_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Run one pass now and print its decisions. Operator role. Exit status 1 when a transaction of the
    pass did not commit."""
    body = _post("run-once", url, token)
    decisions = body["decisions"]
    if json_out:
        output.emit_json(body)
    else:
        output.console.print(_table(decisions))
    failed = any(s["state"] not in ("COMMITTED", "would run") for d in decisions for s in d.get("steps", []))
    raise typer.Exit(ExitCode.NOT_DONE if failed else ExitCode.OK)
