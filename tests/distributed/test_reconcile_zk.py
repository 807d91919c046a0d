"""The reconcile options of ``tropic serve`` hold in ZooKeeper mode, on the real ensemble: the leader runs
periodic drift passes at ``--reconcile-interval`` and resolves drift by ``--policy``. A crashed VM is
restarted by a repair transaction the reconciler submits; with the default policy (report) the same crash
is only reported and fenced."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from distributed.cluster import TOKEN, Cluster, FailoverClient
from tropic.drivers.sim_shared import SharedSimDriver

HOST = "/compute/us-east/host-01"
VM = f"{HOST}/web-1"
SPAWN = {
    "host": HOST,
    "name": "web-1",
    "image": "/storage/us-east/san-1/img-ubuntu",
    "vcpus": 1,
    "memory_mib": 256,
}


def get(url: str, route: str, **params: Any) -> Any:
    r = httpx.get(f"{url}{route}", params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(what: str, check: Any, cluster: Cluster, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s:\n{cluster.logs()}")
        time.sleep(0.1)


def transactions(url: str) -> list[dict[str, Any]]:
    return list(get(url, "/v1/transactions", limit=1000)["items"])


def crash_and_watch(cluster: Cluster) -> tuple[str, Any]:
    """Spawn a VM through the leader, crash it on its device, and return the leader's URL and the
    devices, for the test to watch what the reconciler does."""
    cluster.start()
    url = cluster.urls[int(cluster.leader(120)[1:])]
    client = FailoverClient([url])
    try:
        tid = client.submit("spawn_vm", SPAWN, key="spawn-web-1")
    finally:
        client.close()
    wait_for(
        "the spawn committed", lambda: get(url, f"/v1/transactions/{tid}")["state"] == "COMMITTED", cluster
    )
    devices = SharedSimDriver(cluster.devices)
    assert devices.inventory()["hosts"][HOST]["vms"]["web-1"]["state"] == "running"
    devices.crash_vm(VM)
    return url, devices


@pytest.mark.timeout(300)
def test_zk_mode_runs_periodic_passes_with_the_given_policy(zk_uri: str, tmp_path: Path) -> None:
    options = ["--reconcile-interval", "0.3", "--policy", "vm=repair,*=report"]
    cluster = Cluster(zk_uri, tmp_path / "cluster", controllers=1, workers=1, serve_options=options)
    try:
        url, devices = crash_and_watch(cluster)
        try:

            def repaired() -> list[dict[str, Any]]:
                return [
                    t
                    for t in transactions(url)
                    if t["submitter"] == "reconciler" and t["procedure"] == "restore_vm_state"
                    and t["state"] == "COMMITTED"
                ]  # fmt: skip

            (repair,) = wait_for("a committed repair by the reconciler", repaired, cluster)
            assert get(url, f"/v1/transactions/{repair['id']}")["args"] == {"vm": VM}
            wait_for(
                "the VM running again on its device",
                lambda: devices.inventory()["hosts"][HOST]["vms"]["web-1"]["state"] == "running",
                cluster,
            )
            assert get(url, "/v1/drift", path="/", scan=True)["items"] == []
        finally:
            devices.close()
    finally:
        cluster.stop()


@pytest.mark.timeout(300)
def test_zk_mode_with_the_report_policy_only_fences(zk_uri: str, tmp_path: Path) -> None:
    options = ["--reconcile-interval", "0.3"]
    cluster = Cluster(zk_uri, tmp_path / "cluster", controllers=1, workers=1, serve_options=options)
    try:
        url, devices = crash_and_watch(cluster)
        try:
            # A periodic pass (not this read: scan=false) records the drift and fences the VM.
            wait_for(
                "the crashed VM fenced", lambda: VM in get(url, "/v1/drift", scan=False)["fenced"], cluster
            )
            assert [t for t in transactions(url) if t["submitter"] == "reconciler"] == []
            assert devices.inventory()["hosts"][HOST]["vms"]["web-1"]["state"] == "stopped"
        finally:
            devices.close()
    finally:
        cluster.stop()
