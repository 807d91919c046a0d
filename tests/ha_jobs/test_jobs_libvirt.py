"""With libvirt a replica is a domain as usual: a job's replicas are domains on distinct hosts' test
hypervisors (libvirt's own API shows them), nothing is started beside them, and deleting the job removes
the domains; the model and libvirt agree throughout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING, Probe
from ha_jobs.kit import ZK, replicas, run
from tropic.drivers.registry import open_driver
from tropic.model import audit, project
from tropic.scenario import build_datacenter
from tropic.txn import Controller, State

pytestmark = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)


@pytest.fixture
def ctl() -> Iterator[tuple[Controller, Any]]:
    model = build_datacenter()
    driver = open_driver("libvirt+test:///default")
    driver.load(project(model))  # type: ignore[attr-defined]
    c = Controller(model, driver).start()
    yield c, driver
    c.stop()
    driver.close()


def test_a_jobs_replicas_are_domains_on_distinct_hosts(ctl: tuple[Controller, Any]) -> None:
    c, driver = ctl
    args = {"name": "kv", "program": "python3 kv.py", "replicas": 3, "failure_domain": "region", "zk": ZK}
    t = run(c, "create_job", args)
    assert t.state is State.COMMITTED, t.error
    placed = replicas(c, "kv")
    assert len({h.split("/")[2] for h in placed.values()}) == 3  # one per region
    probe = Probe(driver)
    for name, host in placed.items():
        assert name in probe.domains(host)
    assert driver.replica_processes() == {}  # the domain is the replica: no local process
    report = c.check()
    assert report["consistent"], report["differences"]
    assert audit(c.model) == []
    assert run(c, "delete_job", {"job": "kv"}).state is State.COMMITTED
    for name, host in placed.items():
        assert name not in probe.domains(host)
