"""Controller replicas: standbys answer with the leader's name, a leader stopped with SIGTERM hands over
at once (it resigns; nobody waits for its session to expire), and the new leader has everything."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from core.helpers import until
from distributed.cluster import TOKEN, Cluster, FailoverClient, request, verify, wait_all_final

SESSION_S = 60.0  # the leader's ZooKeeper session: a handover faster than this was not waited out


def test_standbys_name_the_leader_and_a_stopped_leader_hands_over_at_once(
    zk_uri: str, tmp_path: Path
) -> None:
    cluster = Cluster(zk_uri, tmp_path / "cluster", controllers=2, workers=1, session_timeout=SESSION_S)
    cluster.start()
    fc = FailoverClient(cluster.urls)
    try:
        leader = cluster.leader(120)
        standby = "c1" if leader == "c0" else "c0"
        url = cluster.urls[int(standby[1:])]

        def standing_by() -> bool:  # the standby may start after the leader (a loaded machine)
            try:
                health = httpx.get(f"{url}/healthz", timeout=10)
            except httpx.TransportError:
                return False
            return health.status_code == 503 and health.json().get("status") == "standby"

        until(standing_by, f"{standby} answering as a standby", timeout=120)
        r = httpx.get(f"{url}/v1/transactions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "not_leader" and f"the leader is {leader}" in error["message"], error
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "standby"

        ids = [fc.submit(*request(5, i, ["us-east"]), key=f"r-{i}") for i in range(20)]
        started = time.monotonic()
        cluster.procs[leader].stop()  # SIGTERM: steps down and resigns
        assert cluster.leader(SESSION_S / 2) == standby  # well before the old session could expire
        handover = time.monotonic() - started
        print(f"handover after SIGTERM: {handover:.2f} s")
        ids += [fc.submit(*request(5, i, ["us-east"]), key=f"r-{i}") for i in range(20, 40)]
        txns = wait_all_final(zk_uri, 40, 240)
        report = verify(zk_uri, cluster.devices)
        assert sorted(ids) == sorted(t.id for t in txns)
        assert report["consistent"] and report["violations"] == [] and report["duplicates"] == []
    except BaseException:
        print(cluster.logs(20))
        raise
    finally:
        fc.close()
        cluster.stop()
