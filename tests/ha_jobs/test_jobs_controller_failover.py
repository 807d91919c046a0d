"""A replicated job across the death of the controller that leads, in distributed mode on the real
ZooKeeper ensemble: controller replicas (``tropic serve --store zk://...``) and a worker process; the job
(the KV example, three replicas started by the worker's sim host) keeps its request log in the
controllers' own ensemble (chroot ``<store chroot>-ha``). The leader is SIGKILLed under load: the
replicas go on serving (they are no children of the controller), the next leader's healer takes the job
over and replaces a replica killed afterwards, and no acknowledged write is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from distributed.cluster import TOKEN, Cluster
from ha_jobs.verify import (
    PROGRAM,
    acknowledged,
    linearizable,
    lost_acknowledged_writes,
    start_load,
    wait_for,
)
from tropic.drivers.sim_process import SimProcesses


def job_row(cluster: Cluster, leader: str) -> dict[str, Any] | None:
    url = cluster.urls[int(leader[1:])]
    try:
        r = httpx.get(f"{url}/v1/jobs/kv", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def all_serving(cluster: Cluster, leader: str, names: set[str] | None = None) -> dict[str, Any] | None:
    row = job_row(cluster, leader)
    if row is None:
        return None
    up = {m["name"] for m in row["members"] if m["health"] == "serving"}
    want = names or {m["name"] for m in row["members"]}
    return row if len(row["members"]) == 3 and want <= up and len(up) == 3 else None


def test_the_job_serves_across_the_leaders_death_and_the_next_leader_heals_it(
    zk_uri: str, tmp_path: Path
) -> None:
    cluster = Cluster(zk_uri, tmp_path / "cluster", controllers=2, workers=1)
    load = None
    try:
        cluster.start()
        leader = cluster.leader(120)
        url = cluster.urls[int(leader[1:])]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
            r = c.post(
                "/v1/jobs", json={"name": "kv", "program": PROGRAM, "replicas": 3, "failure_domain": "rack"}
            )
            assert r.status_code == 200 and r.json()["committed"], r.text
            jobs_zk = c.get("/v1/jobs").json()["zk"]
        assert jobs_zk.endswith("-ha")
        wait_for(lambda: all_serving(cluster, leader), 120, "three serving replicas")
        load = start_load(jobs_zk, "kv")
        load.wait_more(100)

        cluster.procs[leader].kill()  # SIGKILL: no step-down
        load.wait_more(100, timeout=60)  # served while there is no leader at all
        survivor = cluster.leader(120)
        assert survivor != leader
        wait_for(lambda: all_serving(cluster, survivor), 60, "the new leader sees three serving replicas")

        # the new leader heals: a replica process dies, a replacement serves
        row = job_row(cluster, survivor)
        assert row is not None
        SimProcesses(Path(f"{cluster.devices}.replicas")).kill("/jobs/kv/kv-2")
        wait_for(
            lambda: all_serving(cluster, survivor, {"kv-4"}), 60, "kv-4 serving (the replacement of kv-2)"
        )
        load.wait_more(100)
        history = load.finish()
        load = None
        assert acknowledged(history) >= 300
        assert lost_acknowledged_writes(jobs_zk, "kv", history) == []
        assert linearizable(history) is True
        row = job_row(cluster, survivor)
        assert row is not None and row["status"] == "healthy", row
        assert sorted(m["name"] for m in row["members"]) == ["kv-1", "kv-3", "kv-4"], row
    except BaseException:
        print(cluster.logs(40))
        print(job_row(cluster, cluster.leader(5)))
        raise
    finally:
        if load is not None:
            load.finish()
        cluster.stop()
        SimProcesses(Path(f"{cluster.devices}.replicas")).kill_all()
