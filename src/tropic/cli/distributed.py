"""Distributed mode's commands: ``tropic worker`` (a worker process) and the replicated ``tropic serve
--store zk://...`` (a controller replica serving the API while it leads).

Both need a driver every process can reach: ``sim:///path/devices.db`` (simulated devices shared through
one SQLite file, for one machine) or a real backend such as ``libvirt+qemu+ssh://...``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Annotated, Any

import typer

from tropic.api.audit import AuditLog
from tropic.api.auth import TokenStore
from tropic.cli import output
from tropic.drivers.base import Driver
from tropic.errors import ConfigError, TropicError
from tropic.model import Model

log = logging.getLogger("tropic.distributed")

DEFAULT_SESSION_TIMEOUT = 3.0


def open_distributed_driver(uri: str | None) -> Driver:
    """The driver of a distributed-mode process: devices every controller and worker reaches."""
    if uri is None or uri in ("sim://", "sim:", "sim"):
        raise ConfigError(
            "distributed mode needs devices every controller and worker reaches: "
            "--driver sim:///PATH/devices.db (simulated, one machine) or a real driver URI"
        )
    if uri.startswith("sim:"):
        from tropic.drivers.sim_shared import open_shared_sim

        return open_shared_sim(uri)
    from tropic.runtime import open_driver_uri

    return open_driver_uri(uri)


def default_datacenter() -> Model:
    from tropic.scenario.datacenter import DatacenterSpec, build_datacenter

    return build_datacenter(DatacenterSpec())


# --- tropic worker ---------------------------------------------------------------------------------------
def worker_cmd(
    store: Annotated[str, typer.Option("--store", help="The ZooKeeper store: zk://HOST:PORT[,...]/CHROOT.")],
    driver: Annotated[
        str, typer.Option("--driver", help="Devices: sim:///PATH/devices.db or a real driver URI.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name (default: HOST-PID).", show_default=False)
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1024, help="Transactions run at once.")
    ] = 16,
    session_timeout: Annotated[
        float,
        typer.Option(
            "--session-timeout",
            min=1.0,
            help="Seconds of silence before ZooKeeper declares this worker dead.",
        ),
    ] = 4.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run physical steps for the controllers: claim started transactions from the physical queue in
    ZooKeeper, replay them on the devices, report. SIGTERM finishes the running transactions first."""
    from tropic.store.zkclient import open_client, parse_zk_uri
    from tropic.txn.remote import Worker

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    address = parse_zk_uri(store)
    devices = open_distributed_driver(driver)
    client = open_client(address, connect_timeout=30, session_timeout=session_timeout)
    worker = Worker(client, devices, name=name, concurrency=concurrency)
    stop = threading.Event()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(1)  # a second signal: stop now (the claims end with the process's session)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    output.err_console.print(
        f"tropic worker {worker.name}: {concurrency} at once, store {address}, driver {driver}",
        highlight=False,
    )
    try:
        worker.run(stop)
    finally:
        client.stop()
        client.close()
        devices.close()
    output.err_console.print(
        f"tropic worker {worker.name} stopped: {worker.stats.to_dict()}", highlight=False
    )


# --- tropic serve --store zk://... ------------------------------------------------------------------------
def serve_replicated(
    store: str,
    driver: str | None,
    *,
    host: str,
    port: int,
    tokens: TokenStore,
    token_note: str,
    audit: AuditLog,
    uvicorn_config: dict[str, Any],
    name: str | None,
    session_timeout: float,
) -> None:
    """A controller replica: the API (via :class:`~tropic.ha.gate.LeaderGate`) while it leads, a 503
    naming the leader while it stands by; SIGTERM steps down (a standby takes over at once)."""
    import uvicorn

    from tropic.api.app import create_app
    from tropic.cli.serve import make_server
    from tropic.ha import DurableKeys, LeaderGate, Replica, ReplicaConfig, ReplicatedController
    from tropic.store.zk import ZooKeeperStore

    scheme = "https" if uvicorn_config.get("ssl_certfile") else "http"
    advertised = f"{scheme}://{host}:{port}"
    me = name or f"{socket.gethostname()}:{port}"
    devices = open_distributed_driver(driver)
    gate: LeaderGate

    def on_lead(controller: ReplicatedController) -> None:
        assert isinstance(controller.store, ZooKeeperStore)
        app = create_app(controller, tokens, audit, idempotency=DurableKeys(controller.store))
        gate.lead(app)

    replica = Replica(
        ReplicaConfig(store, me, advertised, session_timeout=session_timeout),
        devices,
        initial=default_datacenter,
        on_lead=on_lead,
        on_step_down=lambda: gate.step_down(),
    )
    gate = LeaderGate(replica.describe_standby)
    runner = threading.Thread(target=_run_replica, args=(replica,), name="tropic-replica", daemon=True)
    config = uvicorn.Config(gate, host=host, port=port, **uvicorn_config)
    server = make_server(config, on_exit=replica.stop)
    output.err_console.print(
        f"tropic controller replica {me} on {advertised} (store {store}): the API answers while it leads\n"
        f"  auth: {token_note}\n  audit log: {audit.path}",
        highlight=False,
    )
    runner.start()
    try:
        server.run()
    finally:
        replica.stop()
        runner.join(60)
        devices.close()
        audit.close()


def _run_replica(replica: Any) -> None:
    try:
        replica.run()
    except TropicError as e:
        log.error("replica stopped: %s", e.message)
    except Exception:
        log.exception("replica stopped")
