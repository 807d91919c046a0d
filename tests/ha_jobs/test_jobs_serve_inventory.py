"""``tropic serve --inventory FILE`` starts the file's ``[[jobs]]``: each by a ``create_job`` transaction,
as ``tropic inventory apply`` does, its replicas in distinct failure domains; a restart on the same store
starts nothing twice; a file with jobs and no ZooKeeper for their logs is refused before anything is
opened, naming the file's line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ha_jobs.kit import SLEEPER, replicas
from ha_jobs.test_jobs_inventory import FLEET
from tropic.api import AuditLog, TokenStore
from tropic.drivers import SimDriver
from tropic.inventory import InventoryError, load
from tropic.records.query import TxnQuery
from tropic.service.jobs import INVENTORY
from tropic.service.wiring import EmbeddedService, ServiceConfig, build_service

JOBS = f"""
[[jobs]]
name = "kv"
program = [{sys.executable!r}, "-c", {SLEEPER!r}]
replicas = 3
failure_domain = "host"

[[jobs]]
name = "web"
program = [{sys.executable!r}, "-c", {SLEEPER!r}]
replicas = 2
failure_domain = "rack"
vcpus = 2
"""


def config(tmp_path: Path, ha_zk: str | None) -> ServiceConfig:
    (tmp_path / "fleet.toml").write_text(FLEET + JOBS)
    return ServiceConfig(
        tokens=TokenStore([("admin", "x" * 32, "admin")]),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        store=f"sqlite:///{tmp_path / 'store.db'}",
        port=0,
        reconcile_interval=0,
        inventory=load(tmp_path / "fleet.toml"),
        ha_zk=ha_zk,
    )


class Services:
    """The services a test started; each closed once (by the test, or at its end)."""

    def __init__(self) -> None:
        self.open: list[EmbeddedService] = []
        self.last: EmbeddedService | None = None

    def add(self, service: EmbeddedService) -> EmbeddedService:
        self.open.append(service)
        self.last = service
        return service

    def close(self, service: EmbeddedService) -> None:
        self.open.remove(service)
        service.job_healer.stop()
        service.reconciler.stop()
        service.embedded.close()


@pytest.fixture
def started() -> Iterator[Services]:
    services = Services()
    yield services
    for s in list(services.open):
        services.close(s)
    if services.last is not None and isinstance(services.last.embedded.driver, SimDriver):
        services.last.embedded.driver.processes.kill_all()  # the replicas outlive their controller


def serve(tmp_path: Path, zk_uri: str, started: Services) -> EmbeddedService:
    service = build_service(config(tmp_path, zk_uri))
    assert isinstance(service, EmbeddedService)
    return started.add(service)


def test_serving_an_inventory_starts_its_jobs_once(tmp_path: Path, zk_uri: str, started: Services) -> None:
    service = serve(tmp_path, zk_uri, started)
    c = service.controller
    made = [t for t in service.embedded.store.find_txns(TxnQuery()) if t.procedure == "create_job"]
    assert sorted(str(t.args["name"]) for t in made) == ["kv", "web"]
    assert all(t.state.value == "COMMITTED" and t.submitter == INVENTORY for t in made)
    assert all(t.args["zk"] == zk_uri for t in made)
    kv, web = replicas(c, "kv"), replicas(c, "web")
    assert len(kv) == 3 and len(set(kv.values())) == 3  # three hosts
    assert len(web) == 2 and {h.rsplit("/", 1)[1] for h in web.values()} & {"host-03"}  # two racks
    assert [j.job for j in service.jobs_started] == ["kv", "web"]
    assert any("inventory job /jobs/kv: transaction" in line for line in service.describe())
    started.close(service)

    again = serve(tmp_path, zk_uri, started)  # a restart on the same store, with the same file
    assert again.jobs_started == []
    made_again = [t for t in again.embedded.store.find_txns(TxnQuery()) if t.procedure == "create_job"]
    assert [t.id for t in made_again] == [t.id for t in made]
    assert replicas(again.controller, "kv") == kv


def test_jobs_without_a_zookeeper_are_refused_before_the_store_is_made(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as e:
        build_service(config(tmp_path, None))
    assert str(tmp_path / "fleet.toml") in str(e.value) and "--ha-zk" in str(e.value)
    assert not (tmp_path / "store.db").exists()
