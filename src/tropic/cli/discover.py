"""``tropic inventory discover``: what libvirt hypervisors hold, printed as an inventory file.

Offline (``URI...``) it reads each hypervisor through libvirt (:mod:`tropic.drivers.discover`). With
``--url`` it asks a running server for the devices it drives (``GET /v1/discover``), so the private test
hypervisors inside that server are read too; ``--unmanaged`` lists the device objects the server's model
does not know, ``--adopt`` adopts them into the model (a reload of each) and ``--ignore`` has the server
leave them alone.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tropic.api.defaults import DEFAULT_URL
from tropic.cli import output
from tropic.cli.client import Token, _client
from tropic.cli.output import ExitCode
from tropic.errors import ConfigError, TropicError

SECTIONS = ("regions", "hosts", "storage", "networks", "vms")


class Format(StrEnum):
    TOML = "toml"
    YAML = "yaml"
    JSON = "json"


def render(doc: dict[str, Any], fmt: Format) -> str:
    """The inventory document as a file: sections in order (``regions``, ``hosts``, ``storage``,
    ``networks``, ``vms``); what could not be listed goes to the caller, not into the file."""
    body = {k: doc.get(k, []) for k in SECTIONS if doc.get(k)}
    if fmt is Format.JSON:
        return json.dumps(body, indent=2) + "\n"
    if fmt is Format.YAML:
        import yaml

        return str(yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
    return to_toml(body)


def _toml_value(v: Any) -> str:
    import tomli_w

    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[ " + ", ".join(_toml_value(x) for x in v) + " ]" if v else "[]"
    return tomli_w.dumps({"v": v})[len("v = ") :].strip()  # a scalar, quoted and escaped as TOML wants


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def to_toml(body: dict[str, list[dict[str, Any]]]) -> str:
    """Each section as an array of tables (``[[hosts]]``), nested lists of tables inline (``images``)."""
    lines: list[str] = []
    for section, items in body.items():
        for item in items:
            lines.append(f"[[{section}]]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _unmanaged_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="unmanaged device objects", title_justify="left", header_style="bold")
    for col in ("kind", "path", "device", "detail"):
        table.add_column(col, overflow="fold")
    for u in items:
        detail = " ".join(f"{k}={v}" for k, v in sorted(u.get("detail", {}).items()))
        table.add_row(u["kind"], u["path"], u["device"], detail)
    return table


def discover_cmd(
    uris: Annotated[
        list[str] | None,
        typer.Argument(
            help="libvirt URIs to read (libvirt+ optional), e.g. libvirt+qemu+ssh://kvm-1/system."
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("-o", "--output", help="File format.")] = Format.TOML,
    region: Annotated[str, typer.Option("--region", help="Region of the discovered hosts.")] = "default",
    out: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write the inventory there instead of stdout.")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="TROPIC_URL", help="Discover the devices this server drives instead."),
    ] = None,
    token: Token = None,
    unmanaged: Annotated[
        bool, typer.Option("--unmanaged", help="With --url: list the objects the server's model lacks.")
    ] = False,
    adopt: Annotated[
        bool, typer.Option("--adopt", help="With --url: adopt the unmanaged objects into the model.")
    ] = False,
    ignore: Annotated[
        bool, typer.Option("--ignore", help="With --url: have the server leave the unmanaged objects alone.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --unmanaged/--adopt: print JSON.")] = False,
) -> None:
    """Read libvirt hypervisors (or, with --url, the devices a server drives) and print an inventory file.

    Hosts, their CPUs and memory, VMs (domains), storage (pools' volumes as images) and networks. Exit
    status 0 done; 1 a hypervisor did not answer, or with --unmanaged there are unmanaged objects; 2 bad
    input; 3 server unreachable."""
    if url is None and (unmanaged or adopt or ignore):
        output.fail("--unmanaged, --adopt and --ignore act on a server: give --url")
    if url is None and not uris:
        output.fail("give libvirt URIs to discover, or --url of a server")
    if url is not None and uris:
        output.fail("give either libvirt URIs or --url, not both")
    if sum((unmanaged, adopt, ignore)) > 1:
        output.fail("--unmanaged, --adopt and --ignore go one at a time")
    if url is None:
        from tropic.drivers.discover import discover

        try:
            doc = discover(uris or [], region=region)
        except ConfigError as e:
            output.fail(e)  # bad input
        except TropicError as e:
            output.fail(e, code=ExitCode.NOT_DONE)  # a hypervisor that does not answer
    else:
        with _client(url or DEFAULT_URL, token) as c:
            if unmanaged or adopt or ignore:
                items = c.unmanaged()["items"]
                paths = [u["path"] for u in items]
                result: dict[str, Any] = {"items": items}
                if adopt and paths:
                    result["adopted"] = c.adopt(paths)
                if ignore and paths:
                    result["ignored"] = c.ignore(paths)["ignored"]
                if json_out:
                    output.emit_json(result)
                elif items:
                    output.console.print(_unmanaged_table(items))
                    verb = "adopted" if adopt else "ignored" if ignore else ""
                    if verb:
                        output.console.print(f"{verb}: {', '.join(paths)}")
                else:
                    output.console.print("no unmanaged device objects")
                code = ExitCode.NOT_DONE if unmanaged and items else ExitCode.OK
                raise typer.Exit(code)
            served = c.discover()
        doc = served["inventory"]
        for u in served.get("unmanaged", []):
            output.err_console.print(f"unmanaged: {u['kind']} {u['path']}", highlight=False)
        for p in served.get("capacity_problems", []):
            output.err_console.print(f"capacity: {p}", highlight=False)
    for why in doc.get("skipped", []):
        output.err_console.print(f"skipped: {why}", highlight=False)
    text = render(doc, fmt)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        output.err_console.print(f"wrote {out}", highlight=False)
    else:
        typer.echo(text, nl=False)


def register(inventory: typer.Typer) -> None:
    """Add ``discover`` to the ``tropic inventory`` group."""
    inventory.command("discover")(discover_cmd)
