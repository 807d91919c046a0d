"""``tropic serve``: the controller as a long-running service (REST API, events, metrics, dashboard).

The controller comes from :func:`tropic.runtime.open_controller` (embedded SQLite store and sim driver by
default). Without ``--tokens`` one admin token is generated once, kept in a file only its owner can read,
and reused on the next start; the token itself is never printed or logged, only where it is.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, cast

import typer

from tropic.api.audit import AuditLog
from tropic.api.auth import MIN_TOKEN_LENGTH, TokenStore, new_secret, write_secret
from tropic.api.defaults import DEFAULT_HOST, DEFAULT_PORT, default_audit_file, default_token_file
from tropic.cli import output
from tropic.errors import ConfigError, TropicError
from tropic.txn.controller import Controller

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("tropic.serve")

serve_app = typer.Typer(add_completion=False)


def _generated_tokens(token_file: Path) -> tuple[TokenStore, bool]:
    """One admin token, read from ``token_file`` or generated into it. True when freshly generated."""
    if token_file.exists():
        secret = token_file.read_text(encoding="utf-8").strip()
        if len(secret) >= MIN_TOKEN_LENGTH:
            return TokenStore([("admin", secret, "admin")]), False
    secret = new_secret()
    write_secret(token_file, secret)
    return TokenStore([("admin", secret, "admin")]), True


def _in_memory_controller(store: str | None, driver: str | None) -> Controller:
    """Fallback while :mod:`tropic.runtime` is unavailable: a generated datacenter on the in-memory sim
    driver (no durability; ``--store`` is refused rather than silently ignored)."""
    from tropic.drivers.sim import SimDriver
    from tropic.model import project
    from tropic.scenario.datacenter import build_datacenter

    if store is not None or driver not in (None, "sim://", "sim:"):
        raise ConfigError("--store and --driver need tropic.runtime, which is not available in this install")
    model = build_datacenter()
    sim = SimDriver(latency=0.05)
    sim.load(project(model))
    return Controller(model, sim)


def open_service_controller(store: str | None, driver: str | None) -> Controller:
    """The controller to serve, from :func:`tropic.runtime.open_controller` when it exists."""
    try:
        runtime = importlib.import_module("tropic.runtime")
    except ModuleNotFoundError as e:
        if e.name != "tropic.runtime":
            raise
        return _in_memory_controller(store, driver)
    opener = cast(Callable[[str | None, str | None], Controller], runtime.open_controller)
    return opener(store, driver)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(config: uvicorn.Config, *, on_exit: Callable[[], None]) -> uvicorn.Server:
    """uvicorn's server, calling ``on_exit`` on SIGTERM/SIGINT, which end the service with status 0."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Like uvicorn's, minus re-raising the signal afterwards: that would kill the process before
            # the controller is stopped cleanly. SIGTERM/SIGINT end the service with status 0.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


@serve_app.command("serve")
def serve(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URI (sqlite:///PATH or memory://; zk://HOST:PORT[,...]/CHROOT runs a replicated "
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
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Private key of --tls-cert.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
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
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="What periodic passes do with drift, e.g. 'vm=repair,volume=reload,*=report'.",
        ),
    ] = "*=report",
) -> None:
    """Run the controller as a service: REST API under /v1, live events, /metrics, dashboard at /."""
    import uvicorn

    from tropic.api.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if tokens is not None:
            token_store = TokenStore.load(tokens)
            token_note = f"{len(token_store)} token(s) from {tokens}"
        else:
            where = token_file or default_token_file()
            token_store, fresh = _generated_tokens(where)
            token_note = f"admin token {'generated in' if fresh else 'read from'} {where} (mode 600)"
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        audit_log = AuditLog(audit or default_audit_file())
        if store is not None and store.startswith("zk://"):
            from tropic.cli.distributed import serve_replicated

            tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert else {}
            uv = {
                "log_level": log_level.lower(),
                "timeout_graceful_shutdown": 5,
                "server_header": False,
                **tls,
            }
            serve_replicated(
                store,
                driver,
                host=host,
                port=port,
                tokens=token_store,
                token_note=token_note,
                audit=audit_log,
                uvicorn_config=uv,
                name=name,
                session_timeout=session_timeout,
            )
            return
        from tropic.reconcile import Policies, Reconciler

        policies = Policies.parse(policy)
        controller = open_service_controller(store, driver).start()
        reconciler = Reconciler(controller, interval=reconcile_interval or 30.0, policies=policies)
        if reconcile_interval > 0:
            reconciler.start()
    except TropicError as e:
        output.fail(e, code=output.exit_code(e))
    except OSError as e:
        output.fail(f"cannot start: {e}", code=1)

    app = create_app(controller, token_store, audit_log, reconciler=reconciler)
    events = app.state.events
    scheme = "https" if tls_cert else "http"
    drift_note = f"every {reconcile_interval:g} s, policy {policy}" if reconcile_interval else "on demand"
    output.err_console.print(
        f"tropic serving on {scheme}://{host}:{port}  (dashboard /, API /v1, OpenAPI /openapi.json)\n"
        f"  auth: {token_note}\n  audit log: {audit_log.path}\n"
        f"  drift detection: {drift_note}",
        highlight=False,
    )
    if not _is_loopback(host) and tls_cert is None:
        output.err_console.print(
            "[yellow]warning:[/] listening beyond loopback without TLS: bearer tokens travel in clear text",
        )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    try:
        # End the event streams on exit, or open dashboards would hold the shutdown.
        make_server(config, on_exit=events.close).run()
    finally:
        reconciler.stop()
        controller.stop()
        audit_log.close()
