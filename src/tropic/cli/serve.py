"""``tropic serve``: the controller as a long-running service (REST API, events, metrics, dashboard).

A thin shell over :mod:`tropic.service.wiring`, which builds the service for the embedded and the
ZooKeeper modes alike. Without ``--tokens`` one admin token is generated once, kept in a file only its
owner can read, and reused on the next start; the token itself is never printed or logged, only where it is.
"""

from __future__ import annotations

import ipaddress
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tropic.api.audit import DEFAULT_KEEP_FILES, DEFAULT_MAX_BYTES, AuditLog
from tropic.api.auth import MIN_TOKEN_LENGTH, TokenStore, new_secret, write_secret
from tropic.api.defaults import DEFAULT_HOST, DEFAULT_PORT, default_audit_file, default_token_file
from tropic.api.idempotency import parse_ttl
from tropic.cli import output
from tropic.errors import TropicError
from tropic.service.embedded import DEFAULT_STORE

log = logging.getLogger("tropic.serve")

serve_app = typer.Typer(add_completion=False)


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _generated_tokens(token_file: Path) -> tuple[TokenStore, bool]:
    """One admin token, read from ``token_file`` or generated into it. True when freshly generated."""
    if token_file.exists():
        secret = token_file.read_text(encoding="utf-8").strip()
        if len(secret) >= MIN_TOKEN_LENGTH:
            return TokenStore([("admin", secret, "admin")]), False
    secret = new_secret()
    write_secret(token_file, secret)
    return TokenStore([("admin", secret, "admin")]), True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@serve_app.command("serve")
def serve(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URI (a path, sqlite:///RELATIVE or sqlite:////ABSOLUTE, or memory://; "
            "zk://HOST:PORT[,...]/CHROOT runs a replicated "
            "controller, see docs/distributed.md); default: tropic.db here.",
        ),
    ] = None,
    driver: Annotated[str | None, typer.Option("--driver", help="Driver URI; default: sim://.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens", help="Tokens file (JSON or TOML list of {name, token, role}).", dir_okay=False
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Without --tokens: where the generated admin token is kept "
            "(default $TROPIC_TOKEN_FILE or ~/.config/tropic/token).",
        ),
    ] = None,
    audit: Annotated[
        Path | None,
        typer.Option("--audit", help="Audit log, JSON lines (default ~/.local/state/tropic/audit.jsonl)."),
    ] = None,
    audit_max_bytes: Annotated[
        int,
        typer.Option("--audit-max-bytes", help="Rotate the audit log beyond this size (default 100 MiB)."),
    ] = DEFAULT_MAX_BYTES,
    audit_keep: Annotated[
        int,
        typer.Option("--audit-keep", help="Rotated audit files kept (AUDIT.1 newest ... AUDIT.N oldest)."),
    ] = DEFAULT_KEEP_FILES,
    idempotency_ttl: Annotated[
        str,
        typer.Option(
            "--idempotency-ttl",
            help="How long an Idempotency-Key is remembered from its first use, e.g. 24h, 90m, 7d.",
        ),
    ] = "24h",
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Private key of --tls-cert.")] = None,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="How much the server logs.")
    ] = LogLevel.INFO,
    name: Annotated[
        str | None, typer.Option("--name", help="With zk://: this replica's name (default HOST:PORT).")
    ] = None,
    session_timeout: Annotated[
        float,
        typer.Option(
            "--session-timeout", min=1.0, help="With zk://: seconds before a silent leader is replaced."
        ),
    ] = 3.0,
    reconcile_interval: Annotated[
        float,
        typer.Option(
            "--reconcile-interval",
            min=0.0,
            help="Seconds between drift-detection passes over the devices (0: only on demand).",
        ),
    ] = 30.0,
    ha_zk: Annotated[
        str | None,
        typer.Option(
            "--ha-zk",
            help="ZooKeeper holding replicated jobs' request logs, zk://HOST:PORT[,...]/CHROOT "
            "(default with a zk:// store: its ensemble, chroot <store chroot>-ha; embedded: none, "
            "and jobs are refused).",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="What periodic passes do with drift, e.g. 'vm=repair,volume=reload,*=report'.",
        ),
    ] = "*=report",
    retain: Annotated[
        str | None,
        typer.Option(
            "--retain",
            help="Keep final transactions this long and/or this many, e.g. '30d,10M'; then archive and "
            "remove them (sqlite:// stores; zk:// stores: on the leader, with --archive).",
        ),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            help="Folder of the archive of --retain (default: <store>.archive; zk:// stores: required, "
            "the same folder, e.g. shared storage, for every controller).",
        ),
    ] = None,
    retain_interval: Annotated[
        float,
        typer.Option("--retain-interval", help="Seconds between retention passes.", min=0.1),
    ] = 300.0,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            help="Inventory file (TOML or YAML, see docs/inventory.md) a new store starts with instead of "
            "the generated datacenter; a store that holds a model is served only when it matches the "
            "file (change it with `tropic inventory apply`); the file's [[jobs]] the model lacks are "
            "created once the server is up (they need --ha-zk on an embedded store).",
            dir_okay=False,
        ),
    ] = None,
    autopilot: Annotated[
        str | None,
        typer.Option(
            "--autopilot",
            help="Run the autopilot on the leader with these policies, e.g. 'hotspot' or "
            "'hotspot,psepr:overlay,image-gc:3/7d' (see docs/autopilot.md); every change it decides is a "
            "transaction.",
        ),
    ] = None,
    autopilot_interval: Annotated[
        float, typer.Option("--autopilot-interval", min=0.1, help="Seconds between autopilot passes.")
    ] = 300.0,
    autopilot_dry_run: Annotated[
        bool,
        typer.Option("--autopilot-dry-run", help="Record what the autopilot would run; run nothing."),
    ] = False,
    autopilot_budget: Annotated[
        int, typer.Option("--autopilot-budget", min=0, help="Most migrations per autopilot pass.")
    ] = 5,
    autopilot_vm_budget: Annotated[
        int, typer.Option("--autopilot-vm-budget", min=0, help="Most migrations of one VM per 24 h.")
    ] = 3,
    autopilot_hysteresis: Annotated[
        float,
        typer.Option("--autopilot-hysteresis", min=0.0, help="Act only when predicted gain > cost x this."),
    ] = 1.5,
    sim_trace: Annotated[
        str | None,
        typer.Option(
            "--sim-trace",
            help="Simulated VMs' CPU utilisation: a PlanetLab-format trace (DAY.csv.gz, docs/autopilot.md) "
            "or 'sample' (the shipped one), played from start-up; what the autopilot's sensors read.",
        ),
    ] = None,
    sim_trace_speed: Annotated[
        float,
        typer.Option("--sim-trace-speed", min=0.001, help="How much faster than the clock the trace plays."),
    ] = 1.0,
    autopilot_cooldown: Annotated[
        float,
        typer.Option("--autopilot-cooldown", min=0.0, help="Seconds before a migrated VM may move again."),
    ] = 3600.0,
    autopilot_sense_interval: Annotated[
        float,
        typer.Option(
            "--autopilot-sense-interval",
            min=0.1,
            help="Seconds between sensor reads between passes; a hot host's reading triggers a pass.",
        ),
    ] = 60.0,
) -> None:
    """Run the controller as a service: REST API under /v1, live events, /metrics, dashboard at /.

    With a zk:// store this process is one controller replica: it serves the API and runs the periodic
    drift passes only while it leads; a standby answers 503 naming the leader.

    With --inventory FILE a new store starts with the file's fleet (regions, hosts, storage, networks,
    VMs) instead of the generated datacenter; every problem of the file is reported (file:line: field:
    why) before anything is opened.

    Tokens, TLS files, inventory, store and driver are checked before anything is served: a problem there
    is one line on stderr and exit status 2 (1 when a store cannot be opened). SIGTERM or Ctrl-C stops
    the server cleanly with exit status 0."""
    from tropic.reconcile import Policies
    from tropic.retention import Retention
    from tropic.service.autopilot import AutopilotSettings
    from tropic.service.wiring import ServiceConfig, build_service

    logging.basicConfig(
        level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        fleet = None
        if inventory is not None:
            from tropic.inventory import load
            from tropic.inventory.seed import precheck

            fleet = load(inventory)  # every problem of the file, before anything is opened
            precheck(fleet, driver)
        if sim_trace and sim_trace != "sample" and not Path(sim_trace).exists():
            output.fail(f"--sim-trace {sim_trace}: no such file", code=output.ExitCode.BAD_INPUT)
        retention = Retention.parse(retain) if retain is not None else None
        key_ttl = parse_ttl(idempotency_ttl)
        if tokens is not None:
            token_store = TokenStore.load(tokens)
            token_note = f"{len(token_store)} token(s) from {tokens}"
        else:
            where = token_file or default_token_file()
            token_store, fresh = _generated_tokens(where)
            token_note = f"admin token {'generated in' if fresh else 'read from'} {where} (mode 600)"
        config = ServiceConfig(
            tokens=token_store,
            audit=AuditLog(audit or default_audit_file(), max_bytes=audit_max_bytes, keep_files=audit_keep),
            store=store or DEFAULT_STORE,
            driver=driver,
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            log_level=log_level.value,
            reconcile_interval=reconcile_interval,
            policies=Policies.parse(policy),
            name=name,
            session_timeout=session_timeout,
            retain=retention,
            archive=archive,
            idempotency_ttl=key_ttl,
            retain_interval=retain_interval,
            inventory=fleet,
            ha_zk=ha_zk,
            autopilot=AutopilotSettings(
                policies=autopilot or "",
                interval=autopilot_interval,
                dry_run=autopilot_dry_run,
                budget_per_pass=autopilot_budget,
                per_vm_per_day=autopilot_vm_budget,
                hysteresis=autopilot_hysteresis,
                cooldown_s=autopilot_cooldown,
                sim_trace=sim_trace or "",
                sim_trace_speed=sim_trace_speed,
                sense_interval=autopilot_sense_interval,
            ),
        )
        service = build_service(config)
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    except OSError as e:
        output.fail(f"cannot start: {e}", code=1)

    lines = service.describe()
    lines[1:1] = [f"  auth: {token_note}", f"  audit log: {config.audit.path}"]
    if inventory is not None:
        lines.insert(1, f"  inventory: {inventory}")
    output.err_console.print("\n".join(lines), highlight=False)
    if not _is_loopback(host) and tls_cert is None:
        output.err_console.print(
            "[yellow]warning:[/] listening beyond loopback without TLS: bearer tokens travel in clear text",
        )
    service.run()
