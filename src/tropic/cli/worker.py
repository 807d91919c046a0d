"""``tropic worker``: a worker process of distributed mode.

It claims started transactions from the physical queue in ZooKeeper and replays them on devices every
process reaches: ``sim:///path/devices.db`` (simulated devices shared through one SQLite file, for one
machine) or a real backend such as ``libvirt+qemu+ssh://...``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from tropic.cli import output
from tropic.service.wiring import open_distributed_driver

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from tropic.model import Model
    from tropic.store.zkclient import ZkAddress


def read_model(client: KazooClient, address: ZkAddress) -> Model | None:
    """The controllers' model as the store holds it now (read-only), for binding devices to backends;
    None before a controller initialised the store."""
    from tropic.model import STANDARD
    from tropic.store.zk import ZooKeeperStore

    restored = ZooKeeperStore(address, client=client, read_only=True).restore(STANDARD)
    return None if restored is None else restored.model


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
    client = open_client(address, connect_timeout=30, session_timeout=session_timeout)
    devices = open_distributed_driver(driver, resolver=lambda: read_model(client, address))
    model = read_model(client, address)
    if model is not None:  # else no controller initialised the store yet: bound on first use
        devices.bind(model)  # which backend and connection drive each device
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
