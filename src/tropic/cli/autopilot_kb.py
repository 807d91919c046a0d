"""``tropic autopilot observations``: what the autopilot's sensors read, from the knowledge base kept in
the controller's store (``GET /v1/autopilot/observations`` of the server that owns it)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Token, Url, _client
from tropic.cli.output import ExitCode

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """``--since``: a duration back from now (``90s``, ``15m``, ``2h``, ``1d``), Unix seconds, or an ISO
    time (``2026-12-06T20:00:00Z``); None of these: a clear error."""
    m = _DURATION.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        value = float(text)
        if math.isfinite(value) and value >= 0:
            return value
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        output.fail(
            f"--since {text!r}: expected a duration (15m, 2h, 1d), Unix seconds or an ISO time",
            code=ExitCode.BAD_INPUT,
        )
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def observations_cmd(
    subject: Annotated[
        str,
        typer.Option("--subject", help="Subject prefix: a path (/compute/r1/host-01) or a key (region:)."),
    ] = "",
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Only this metric (cpu, memory, demand, latency_ms, price)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From: a duration back (15m, 2h), Unix seconds or ISO time.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="The newest this many rows.")
    ] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Readings kept by the autopilot's knowledge base (newest LIMIT matching, oldest first).

    Exit status 0 (also when none match: it says so), 2 for a bad option, 3 when the server is away."""
    start = None if since is None else parse_since(since, time.time())
    with _client(url, token) as c:
        rows = c.observations(subject=subject or None, metric=metric, since=start, limit=limit)
    if json_out:
        output.emit_json(rows)
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("SUBJECT", "METRIC", "VALUE", "AT", "SOURCE"):
            table.add_column(col, justify="right" if col == "VALUE" else "left")
        for r in rows:
            at = datetime.fromtimestamp(float(r["at"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            table.add_row(r["subject"], r["metric"], f"{float(r['value']):.4g}", at, r["source"])
        output.console.print(table if rows else "no observations match")


def register(app: typer.Typer) -> typer.Typer:
    """Add ``observations`` to the ``tropic autopilot`` group ``app``; returns it."""
    app.command("observations")(observations_cmd)
    return app
