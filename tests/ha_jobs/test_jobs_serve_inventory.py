"""``tropic serve --inventory FILE`` starts the file's ``[[jobs]]``: each by a ``create_job`` transaction,
as ``tropic inventory apply`` does, its replicas in distinct failure domains; a restart on the same store
starts nothing twice; a file with jobs and no ZooKeeper for their logs is refused before anything is
opened, naming the file's line. In distributed mode (a ``zk://`` store, the jobs' logs in the
controllers' own ensemble) the leader starts them, and a later term finds them and starts nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distributed.cluster import TOKEN, Cluster
from ha_jobs.kit import SLEEPER, replicas
from ha_jobs.test_jobs_inventory import FLEET
from ha_jobs.verify import wait_for
from tropic.api import AuditLog, TokenStore
from tropic.drivers import SimDriver
from tropic.drivers.sim_process import SimProcesses
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


def _created_jobs(url: str) -> list[tuple[str, str, str]] | None:
    """(job, submitter, state) of the create_job transactions the leader at ``url`` lists."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        r = httpx.get(
            f"{url}/v1/transactions", params={"procedure": "create_job"}, headers=headers, timeout=5
        )
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    out = []
    for item in r.json()["items"]:
        t = httpx.get(f"{url}/v1/transactions/{item['id']}", headers=headers, timeout=5).json()
        out.append((str(t["args"]["name"]), str(t["submitter"]), str(t["state"])))
    return sorted(out)


def test_each_leader_starts_the_jobs_its_model_lacks_in_distributed_mode(zk_uri: str, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET + JOBS)
    cluster = Cluster(
        zk_uri, tmp_path / "cluster", controllers=1, workers=1, serve_options=["--inventory", str(fleet)]
    )
    want = [("kv", INVENTORY, "COMMITTED"), ("web", INVENTORY, "COMMITTED")]
    try:
        cluster.start()
        url = cluster.urls[0]
        wait_for(lambda: _created_jobs(url) == want, 120, "the inventory's jobs created by the leader")
        cluster.procs["c0"].kill()  # SIGKILL; the next term (the same replica, restarted) finds them
        cluster.procs["c0"].start()
        cluster.leader(120)
        jobs = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
        assert sorted(j["name"] for j in jobs["items"]) == ["kv", "web"]
        assert _created_jobs(url) == want  # nothing created twice
    except BaseException:
        print(cluster.logs(40))
        raise
    finally:
        cluster.stop()
        SimProcesses(Path(f"{cluster.devices}.replicas")).kill_all()
