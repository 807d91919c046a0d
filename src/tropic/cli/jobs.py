"""``tropic job create|delete|list|show``: replicated jobs against a running server (``POST /v1/jobs``,
``DELETE /v1/jobs/{name}``, ``GET /v1/jobs[/{name}]``); ``tropic get jobs`` and ``tropic describe
/jobs/<name>`` show them too (:func:`render_jobs`, :func:`render_job`).

Exit status 0 when done, 1 when the transaction did not commit (e.g. the replicas cannot be placed in
distinct failure domains: the error names the constraint), 2 for bad input (or a server without a
ZooKeeper for jobs), 3 when the server does not answer.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Json, Token, Url, _client
from tropic.cli.output import ExitCode

app = typer.Typer(
    help="Replicated jobs: a program run as N replicas in distinct failure domains, healed by the server.",
    no_args_is_help=True,
    add_completion=False,
)

JobName = Annotated[str, typer.Argument(help="The job's name (a DNS label, e.g. kv).")]


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = [head, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "".join(
        "   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines
    )


def _lag(v: Any) -> str:
    return "-" if v is None else str(v)


def render_jobs(rows: list[dict[str, Any]], wide: bool = False) -> str:
    """``tropic get jobs``: one line per job."""
    head = ["NAME", "REPLICAS", "SERVING", "DOMAIN", "STATUS", "LOG HEAD", "MAX LAG"]
    if wide:
        head += ["VCPUS", "MEMORY", "PROGRAM"]
    out = []
    for r in rows:
        line = [
            r["name"],
            f"{r['up']}/{r['replicas']}",
            str(r["serving"]),
            r["failure_domain"],
            r["status"],
            str(r["log_head"]),
            _lag(r["max_lag"]),
        ]
        if wide:
            line += [str(r["vcpus"]), f"{r['memory_mib']}Mi", " ".join(r["program"])]
        out.append(line)
    return _table(head, out)


def render_job(row: dict[str, Any]) -> str:
    """``tropic describe /jobs/<name>``: the job, its replicas and recent events."""
    lines = [
        f"Job: {row['name']}  ({row['status']}{': ' + row['message'] if row['message'] else ''})",
        f"Program: {' '.join(row['program'])}",
        f"Replicas: {row['up']}/{row['replicas']} up, {row['serving']} serving, failure domain "
        f"{row['failure_domain']}, {row['vcpus']} vCPU / {row['memory_mib']} MiB each",
        f"Log head: {row['log_head']}   replacements: {row['replacements']}   ZooKeeper: {row['zk']}",
        "",
    ]
    text = "\n".join(lines)
    members = [
        [
            m["name"],
            m["host"],
            m["domain"],
            m["health"],
            str(m["pid"] or ""),
            m["address"],
            str(m["applied"]),
            _lag(m["lag"]),
            m["reason"],
        ]
        for m in row["members"]
    ]
    text += _table(
        ["REPLICA", "HOST", "DOMAIN", "HEALTH", "PID", "ADDRESS", "APPLIED", "LAG", "REASON"], members
    )
    events = row.get("events") or []
    if events:
        text += "Events:\n" + "".join(f"  {e['kind']}: {e['message']}\n" for e in events[-10:])
    return text


def _done(result: dict[str, Any], what: str, json_out: bool) -> None:
    t = result["txn"]
    if json_out:
        output.emit_json(result)
    elif result["committed"]:
        output.console.print(f"{what}: committed (transaction {t['id']})", highlight=False)
    else:
        err = t.get("error") or {}
        output.err_console.print(
            f"{what}: {t['state']}: {err.get('message') or 'not committed'}", highlight=False, soft_wrap=True
        )
    raise typer.Exit(ExitCode.OK if result["committed"] else ExitCode.NOT_DONE)


@app.command("create")
def create_cmd(
    name: JobName,
    program: Annotated[
        str,
        typer.Option(
            "--program", help="The program's command line (shell-style) or a JSON array of its arguments."
        ),
    ],
    replicas: Annotated[int, typer.Option("--replicas", min=1, max=100, help="How many replicas run.")] = 3,
    failure_domain: Annotated[
        str, typer.Option("--failure-domain", help="What no two replicas share: host, rack or region.")
    ] = "host",
    vcpus: Annotated[int, typer.Option("--vcpus", min=1, help="vCPUs of each replica.")] = 1,
    memory_mib: Annotated[
        int, typer.Option("--memory-mib", min=1, help="Memory of each replica, MiB.")
    ] = 512,
    region: Annotated[str, typer.Option("--region", help="Only place replicas in this region.")] = "",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the transaction.")] = 120,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """Declare job NAME and start its replicas, each in a failure domain of its own.

    One transaction: placement in simulation (capacity, cordons, distinct domains), then each replica's
    VM and process. Refused (exit 1) when the replicas cannot be placed in distinct domains, naming the
    constraint Job.replicas_in_distinct_domains."""
    if failure_domain not in ("host", "rack", "region"):
        output.fail(f"--failure-domain must be host, rack or region, not {failure_domain!r}")
    body = {
        "name": name,
        "program": program,
        "replicas": replicas,
        "failure_domain": failure_domain,
        "vcpus": vcpus,
        "memory_mib": memory_mib,
        "region": region,
        "timeout": timeout,
    }
    with _client(url, token) as c:
        result = c._json("POST", "/v1/jobs", body=body)
    _done(result, f"create job {name}", json_out)


@app.command("delete")
def delete_cmd(name: JobName, url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Stop every replica of job NAME and remove it (one transaction). Exit 2 when there is no such job."""
    with _client(url, token) as c:
        result = c._json("DELETE", f"/v1/jobs/{name}")
    _done(result, f"delete job {name}", json_out)


@app.command("list")
def list_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Every job: replicas up/declared, serving, failure domain, status, log head, largest lag."""
    with _client(url, token) as c:
        page = c._json("GET", "/v1/jobs")
    if json_out:
        output.emit_json(page)
    elif not page["items"]:
        output.err_console.print("no jobs found")
    else:
        sys.stdout.write(render_jobs(page["items"]))


@app.command("show")
def show_cmd(name: JobName, url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Job NAME: its replicas (host, domain, health, pid, address, applied index, lag) and recent events."""
    with _client(url, token) as c:
        row = c._json("GET", f"/v1/jobs/{name}")
    if json_out:
        output.emit_json(row)
    else:
        sys.stdout.write(render_job(row))
