"""Operator views: ``tropic get vms|hosts|regions`` (kubectl-like rows with capacity, ``-o`` formats, ``-l``
label selectors) and ``tropic describe`` (one resource, its capacity, children and recent transactions).

A thin shell over the REST API (``GET /v1/vms``, ``/v1/hosts``, ``/v1/regions``, ``/v1/describe``), like
the other read commands (``tree``, ``txn list``): it reads through the server that owns the store.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Token, Url, _client, _summary_table
from tropic.cli.jobs import render_job, render_jobs

views_app = typer.Typer(add_completion=False)


class Format(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


ALIASES = {"vm": "vms", "host": "hosts", "region": "regions", "nodes": "hosts"}

# column header -> row key; the wide form adds the second list
COLUMNS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "vms": (
        [
            ("NAME", "name"),
            ("REGION", "region"),
            ("HOST", "host"),
            ("STATE", "state"),
            ("VCPUS", "vcpus"),
            ("MEMORY", "memory_mib"),
            ("UID", "uid"),
        ],
        [("IMAGE", "image"), ("VOLUME", "volume"), ("LABELS", "labels")],
    ),
    "hosts": (
        [
            ("NAME", "name"),
            ("REGION", "region"),
            ("VCPUS", "vcpus"),
            ("MEMORY", "memory"),
            ("VMS", "vms"),
            ("CORDONED", "cordoned"),
            ("DRIVER", "driver"),
            ("DOMAIN", "failure_domain"),
        ],
        [
            ("FREE VCPUS", "vcpus_free"),
            ("FREE MEMORY", "memory_free_mib"),
            ("LABELS", "labels"),
            ("URI", "uri"),
        ],
    ),
    "regions": (
        [
            ("NAME", "name"),
            ("LOCATION", "location"),
            ("TIMEZONE", "timezone"),
            ("HOSTS", "hosts"),
            ("VCPUS", "vcpus"),
            ("MEMORY", "memory"),
            ("VMS", "vms"),
        ],
        [
            ("FREE VCPUS", "vcpus_free"),
            ("FREE MEMORY", "memory_free_mib"),
            ("PROVIDER", "provider"),
            ("LABELS", "labels"),
        ],
    ),
}


def _mib(n: Any) -> str:
    """Memory for people: MiB below 10 GiB, GiB with one decimal above."""
    value = int(n or 0)
    return f"{value / 1024:.1f}Gi" if abs(value) >= 10 * 1024 else f"{value}Mi"


def cell(row: dict[str, Any], key: str) -> str:
    """One table cell; ``vcpus``/``memory`` of a host or region read used/limit (free)."""
    if key == "vcpus" and "vcpu_limit" in row:
        return f"{row['vcpus_used']}/{row['vcpu_limit']:g} (free {row['vcpus_free']:g})"
    if key == "memory" and "memory_used_mib" in row:
        return (
            f"{_mib(row['memory_used_mib'])}/{_mib(row['memory_mib'])} (free {_mib(row['memory_free_mib'])})"
        )
    if key == "memory_mib" and "memory_used_mib" not in row:
        return _mib(row.get(key))
    if key == "memory_free_mib":
        return _mib(row.get(key))
    value = row.get(key, "")
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def render_table(kind: str, rows: list[dict[str, Any]], wide: bool) -> str:
    """Plain aligned columns (as kubectl prints them): never wrapped or cut to the terminal's width, so
    they read the same in a pipe."""
    base, extra = COLUMNS[kind]
    cols = base + (extra if wide else [])
    lines = [[header for header, _ in cols]] + [[cell(row, key) for _, key in cols] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    return "".join(
        "   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines
    )


def dump_yaml(data: Any) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _kind(text: str) -> str:
    kind = ALIASES.get(text.lower(), text.lower())
    if kind not in COLUMNS:
        output.fail(f"cannot get {text!r}: give vms, hosts or regions")
    return kind


@views_app.command("get")
def get(
    what: Annotated[
        str, typer.Argument(help="vms, hosts, regions or jobs.", metavar="vms|hosts|regions|jobs")
    ],
    fmt: Annotated[
        Format,
        typer.Option("-o", "--output", help="table, wide (more columns), json, yaml, or name (paths)."),
    ] = Format.table,
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "-l", "--selector", help="Label selector key=value, key!=value or key; repeat: all must hold."
        ),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="Only this region (its name).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="vms: only this host (its name).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=5000, help="At most this many rows.")] = 500,
    after: Annotated[
        str | None, typer.Option("--after", help="Start after this path (the next page).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """List VMs, hosts or regions with their capacity (used and free).

    VMs: name, region, host, state, vCPUs, memory, uid (wide: image, volume, labels). Hosts: vCPUs and
    memory used/limit with free room, VM count, cordoned, driver, failure domain (wide: labels, URI).
    Regions: location, time zone, hosts and capacity totals. Exit status 2 on a bad selector or an
    unknown region, 3 when the server does not answer."""
    if what.lower() in ("jobs", "job"):  # replicated jobs: their own rows (tropic.cli.jobs)
        _get_jobs(Format.json if as_json else fmt, url, token)
        return
    kind = _kind(what)
    if host is not None and kind != "vms":
        output.fail("--host filters vms only")
    sel = ",".join(selector) if selector else None
    with _client(url, token) as c:
        page = c.listing(
            kind,
            selector=sel,
            region=region if kind != "regions" else None,
            host=host,
            after=after if kind != "regions" else None,
            limit=limit if kind != "regions" else None,
        )
    rows: list[dict[str, Any]] = page["items"]
    if kind == "regions" and region is not None:
        rows = [r for r in rows if r["name"] == region]
    fmt = Format.json if as_json else fmt
    if fmt is Format.json:
        output.emit_json({"kind": kind, "items": rows, "next_after": page.get("next_after")})
    elif fmt is Format.yaml:
        sys.stdout.write(dump_yaml({"kind": kind, "items": rows, "next_after": page.get("next_after")}))
    elif fmt is Format.name:
        for r in rows:
            sys.stdout.write(r["path"] + "\n")
    else:
        if not rows:
            output.err_console.print(f"no {kind} found")
        else:
            sys.stdout.write(render_table(kind, rows, fmt is Format.wide))
    more = page.get("next_after")
    if more and fmt in (Format.table, Format.wide, Format.name):
        output.err_console.print(f"(more: --after {more})", highlight=False)


def _get_jobs(fmt: Format, url: str, token: str | None) -> None:
    with _client(url, token) as c:
        page = c._json("GET", "/v1/jobs")
    rows: list[dict[str, Any]] = page["items"]
    if fmt is Format.json:
        output.emit_json({"kind": "jobs", "items": rows})
    elif fmt is Format.yaml:
        sys.stdout.write(dump_yaml({"kind": "jobs", "items": rows}))
    elif fmt is Format.name:
        for r in rows:
            sys.stdout.write(r["path"] + "\n")
    elif not rows:
        output.err_console.print("no jobs found")
    else:
        sys.stdout.write(render_jobs(rows, wide=fmt is Format.wide))


@views_app.command("describe")
def describe(
    ref: Annotated[
        str,
        typer.Argument(
            help="A path, a VM's name, region/name or uid, or a region's or host's name.", metavar="PATH|NAME"
        ),
    ],
    txns: Annotated[int, typer.Option("--txns", min=0, max=100, help="Recent transactions to show.")] = 20,
    fmt: Annotated[
        Format, typer.Option("-o", "--output", help="table (default), json or yaml.")
    ] = Format.table,
    as_json: Annotated[bool, typer.Option("--json", help="Same as -o json.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Show one resource: attributes, capacity (used and free for hosts and regions; a VM: its host's),
    children, and the recent transactions that acted on it (a migrated VM's found at its earlier paths too).

    Exit status 2 when the name is unknown or ambiguous (the error lists the candidates)."""
    with _client(url, token) as c:
        d = c.describe(ref, txns=txns)
        if d["kind"] == "job":  # a replicated job: its replicas, their lag and health, its events
            d["job"] = c._json("GET", f"/v1/jobs/{d['path'].rsplit('/', 1)[1]}")
    fmt = Format.json if as_json else fmt
    if fmt is Format.json:
        output.emit_json(d)
        return
    if fmt is Format.yaml:
        sys.stdout.write(dump_yaml(d))
        return
    if "job" in d:
        sys.stdout.write(render_job(d["job"]))
        return
    out = output.console
    out.print(Text.assemble(("Path: ", "bold"), d["path"]), highlight=False)
    out.print(Text.assemble(("Kind: ", "bold"), d["kind"]), highlight=False)
    attrs = Table(box=None, pad_edge=False, show_header=False)
    attrs.add_column(style="bold")
    attrs.add_column(overflow="fold")
    for k, v in d["attrs"].items():
        if v in ("", [], {}, None):
            continue
        shown = ",".join(f"{a}={b}" for a, b in sorted(v.items())) if isinstance(v, dict) else str(v)
        attrs.add_row(k, shown)
    out.print(Text("Attributes:", style="bold"))
    out.print(attrs)
    cap = d.get("capacity")
    if cap:
        of = f" (host {cap['of']})" if cap.get("of") else ""
        out.print(Text(f"Capacity{of}:", style="bold"))
        out.print(f"  vCPUs:  {cell(cap, 'vcpus')}", highlight=False)
        out.print(f"  memory: {cell(cap, 'memory')}", highlight=False)
        out.print(f"  VMs:    {cap['vms']}", highlight=False)
    kids = d["children"]
    if kids["count"]:
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kids["by_kind"].items()))
        first = ", ".join(kids["first"]) + (", ..." if kids["count"] > len(kids["first"]) else "")
        out.print(Text.assemble(("Children: ", "bold"), f"{by_kind}: {first}"), highlight=False)
    if d["transactions"]:
        out.print(_summary_table(d["transactions"], title="Recent transactions"))
    else:
        out.print(Text.assemble(("Recent transactions: ", "bold"), "none"))
