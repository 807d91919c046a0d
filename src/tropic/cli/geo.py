"""``tropic image versions|publish|gc`` (the geo-replicated image store) and ``tropic member list|migrate``
(a replicated service's members and their cross-region live migration), against a running server.

A thin shell over the REST API: reads from ``/v1/images`` and ``/v1/services/{name}/members``; every change
an ordinary transaction (``open_image_write`` + ``close_image_write``, ``gc_image``, ``migrate_member``).
Exit status 0 when done, 1 when a transaction did not commit, 2 for bad input, 3 when the server does not
answer.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Json, Token, Url, _client
from tropic.cli.output import ExitCode
from tropic.optimize.plan import PlannedStep
from tropic.service.remote import ApiRunner

image_app = typer.Typer(
    help="The geo-replicated image store: versions, publish (close-to-open), garbage collection.",
    no_args_is_help=True,
    add_completion=False,
)
member_app = typer.Typer(
    help="A replicated service's members: where they run, their public addresses, live migration.",
    no_args_is_help=True,
    add_completion=False,
)

ImageName = Annotated[str, typer.Argument(help="The image's name in the catalog (/images/NAME).")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for each transaction.")]


def _run(c: Any, procedure: str, args: dict[str, Any], timeout: float) -> Any:
    return ApiRunner(c, timeout_s=timeout).run(PlannedStep(procedure, args))


def _done(outcomes: list[Any], json_out: bool, what: str) -> None:
    ok = all(o.committed for o in outcomes)
    if json_out:
        output.emit_json({"committed": ok, "transactions": [o.to_dict() for o in outcomes]})
    elif ok:
        ids = ", ".join(o.txn_id for o in outcomes)
        output.console.print(f"{what}: committed (transaction {ids})", highlight=False)
    else:
        bad = next(o for o in outcomes if not o.committed)
        output.err_console.print(f"{what}: {bad.state}: {bad.error or 'not committed'}", highlight=False)
    raise typer.Exit(ExitCode.OK if ok else ExitCode.NOT_DONE)


@image_app.command("list")
def list_cmd(url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False) -> None:
    """Every image of the catalog: latest version, policy, writer."""
    with _client(url, token) as c:
        rows = c.images()
    if json_out:
        output.emit_json(rows)
        return
    table = Table("NAME", "HOME", "POLICY", "LATEST", "VERSIONS", "WRITER")
    for r in rows:
        table.add_row(r["name"], r["home"], r["policy"], str(r["latest"]), str(r["versions"]), r["writer"])
    output.console.print(table)


@image_app.command("versions")
def versions_cmd(
    name: ImageName, url: Url = DEFAULT_URL, token: Token = None, json_out: Json = False
) -> None:
    """The versions of image NAME, oldest first.

    Each with its digest, size, the regions holding a replica, and what keeps it in use (sessions that
    have it open, volumes cloned from it).

    Exit status 2 when NAME is not in the catalog."""
    with _client(url, token) as c:
        rows = c.images(name)
    if json_out:
        output.emit_json(rows)
        return
    table = Table("VERSION", "DIGEST", "SIZE MIB", "REPLICAS", "READERS", "IN USE")
    for r in rows:
        mark = " (latest)" if r["latest"] else ""
        table.add_row(
            f"{r['version']}{mark}",
            r["digest"],
            str(r["size_mib"]),
            ",".join(sorted(r["replicas"])),
            ",".join(r["readers"]),
            "; ".join(r["in_use"]),
        )
    output.console.print(table)


@image_app.command("publish")
def publish_cmd(
    name: ImageName,
    region: Annotated[str, typer.Option("--region", help="The region the writer writes in.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Data of the new version: its digest and size are taken.")
    ] = None,
    digest: Annotated[str, typer.Option("--digest", help="Digest of the data (without --file).")] = "",
    size_mib: Annotated[int, typer.Option("--size-mib", help="Size in MiB (without --file).")] = 0,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 120,
) -> None:
    """Publish a new version of image NAME, written in REGION.

    Opens it for writing (refused while another writer has it), then closes it, which publishes the
    version (digest, size) to the catalog: every open after that sees it. Two transactions; the write is
    given up if the close does not commit.

    Exit status 1 when a transaction does not commit (e.g. another writer has the image)."""
    if file is not None:
        if not file.is_file():
            output.fail(f"--file {file}: no such file", code=ExitCode.BAD_INPUT)
        h = hashlib.sha256()
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = f"sha256:{h.hexdigest()}"
        size_mib = max(1, math.ceil(file.stat().st_size / (1 << 20)))
    if not digest or size_mib < 1:
        output.fail("give --file, or --digest and --size-mib (>= 1)", code=ExitCode.BAD_INPUT)
    session = f"cli-{uuid.uuid4().hex[:12]}"
    with _client(url, token) as c:
        opened = _run(c, "open_image_write", {"image": name, "region": region, "session": session}, timeout)
        if not opened.committed:
            _done([opened], json_out, f"publish {name}")
        args = {"image": name, "session": session, "digest": digest, "size_mib": size_mib}
        closed = _run(c, "close_image_write", args, timeout)
        if not closed.committed:
            _run(c, "abort_image_write", {"image": name, "session": session}, timeout)
    _done([opened, closed], json_out, f"publish {name} ({digest}, {size_mib} MiB)")


@image_app.command("gc")
def gc_cmd(
    name: ImageName,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Newest versions kept (the latest always).")] = 1,
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 120,
) -> None:
    """Collect the old versions of image NAME and their replicas.

    One transaction. A version some session has open, or whose data backs a volume (a VM), is never
    collected."""
    with _client(url, token) as c:
        outcome = _run(c, "gc_image", {"image": name, "keep": keep}, timeout)
    _done([outcome], json_out, f"gc {name}")


@member_app.command("list")
def members_cmd(
    service: Annotated[str, typer.Argument(help="The service's name (/services/NAME).")],
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
) -> None:
    """The members of SERVICE: VM, region, location, provider, state and public address."""
    with _client(url, token) as c:
        rows = c.members(service)
    if json_out:
        output.emit_json(rows)
        return
    table = Table("ADDRESS", "VM", "REGION", "LOCATION", "PROVIDER", "STATE")
    for r in rows:
        table.add_row(
            r["address"],
            r["vm"],
            r.get("region", ""),
            r.get("location", ""),
            r.get("provider", ""),
            r.get("state", ""),
        )
    output.console.print(table)


@member_app.command("migrate")
def migrate_cmd(
    service: Annotated[str, typer.Argument(help="The replicated service's name.")],
    member: Annotated[str, typer.Argument(help="The member: a VM path, name, region/name or uid.")],
    region: Annotated[str, typer.Option("--region", help="Destination region (best host chosen).")] = "",
    dest: Annotated[str, typer.Option("--dest", help="Destination host path.")] = "",
    url: Url = DEFAULT_URL,
    token: Token = None,
    json_out: Json = False,
    timeout: Timeout = 600,
) -> None:
    """Live-migrate MEMBER of SERVICE to another region, keeping its public address.

    One transaction (reserve, image and volume present, pre-copy, switch the address, release the
    source), rolled back whole on any failure.

    Exit status 1 when it does not commit (a constraint, e.g. the service's spread, or a device failure)."""
    if bool(region) == bool(dest):
        output.fail("give exactly one of --region and --dest", code=ExitCode.BAD_INPUT)
    args = {"service": service, "member": member, "region": region, "dest": dest}
    with _client(url, token) as c:
        outcome = _run(c, "migrate_member", args, timeout)
    _done([outcome], json_out, f"migrate {member}")


def register(app: typer.Typer) -> None:
    """Add ``image`` and ``member`` to the ``tropic`` command."""
    app.add_typer(image_app, name="image")
    app.add_typer(member_app, name="member")
