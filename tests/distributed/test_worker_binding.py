"""A worker process has no model of its own: its router binds from the model the controllers keep in
ZooKeeper (read-only), at start and again when a step touches a device it does not know."""

from __future__ import annotations

from typing import Any

from core.helpers import small_dc
from tropic.cli.worker import read_model
from tropic.drivers import RouterDriver, SimDriver, Step
from tropic.model import Model, project
from tropic.scenario import host_path
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import open_client, parse_zk_uri
from tropic.txn import Controller


class AltSim(SimDriver):
    """A second backend kind, standing for libvirt (whose test hypervisors live in one process)."""

    name = "alt"


def test_a_worker_binds_its_router_from_the_stores_model(zk_uri: str) -> None:
    model = small_dc(hosts=2)
    moved = host_path("r1", 2)
    model.nodes[moved].attrs["driver"] = "alt"
    address = parse_zk_uri(zk_uri)
    leader = open_client(zk_uri)
    worker = open_client(zk_uri)
    try:
        assert read_model(worker, address) is None  # no controller initialised the store yet
        Controller.open(ZooKeeperStore(zk_uri, client=leader), SimDriver(), initial=lambda: model)
        stored = read_model(worker, address)
        assert stored is not None and stored.nodes[moved].attrs["driver"] == "alt"

        reads: list[Model] = []

        def resolver() -> Model | None:
            m = read_model(worker, address)
            if m is not None:
                reads.append(m)
            return m

        alt, default = AltSim(), SimDriver()
        for d in (alt, default):
            d.load(project(model))
        router = RouterDriver(default, openers={"alt": lambda: alt}, resolver=resolver)
        args: dict[str, Any] = {"name": "cfg-1"}
        router.execute(Step(1, 0, moved, "create_config", args))  # unknown here: read the model, bind
        router.execute(Step(1, 1, host_path("r1", 1), "create_config", args))
        assert len(reads) == 1
        assert "cfg-1" in alt.hosts[moved]["configs"] and "cfg-1" not in default.hosts[moved]["configs"]
        assert "cfg-1" in default.hosts[host_path("r1", 1)]["configs"]
    finally:
        for client in (leader, worker):
            client.stop()
            client.close()
