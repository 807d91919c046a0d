"""ZooKeeper servers failing under a running distributed tropic: one server down (quorum kept) changes
nothing but latency; the quorum lost makes the leader refuse work with a clear error naming the
ensemble, and work resumes when the quorum returns, with nothing lost and nothing done twice."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from distributed.cluster import TOKEN, Cluster, FailoverClient, HeadWatcher, request, verify, wait_all_final
from tropic.model.generate import DEFAULT_REGIONS
from zkharness import ZooKeeperEnsemble

REGIONS = list(DEFAULT_REGIONS)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_losing_a_server_or_the_quorum_loses_nothing(
    zk_ensemble: ZooKeeperEnsemble, zk_uri: str, tmp_path: Path
) -> None:
    cluster = Cluster(zk_uri, tmp_path / "cluster", controllers=2, workers=1)
    cluster.start()
    fc = FailoverClient(cluster.urls)
    ids: dict[int, int] = {}
    try:
        cluster.leader(120)
        watcher = HeadWatcher(zk_uri)
        epoch = watcher.epoch()
        watcher.stop()
        for i in range(40):
            ids[i] = fc.submit(*request(3, i, REGIONS), key=f"q-{i}")

        # One server down, quorum kept: the same leader goes on.
        zk_ensemble.kill(zk_ensemble.leader() or 0)
        started = time.monotonic()
        for i in range(40, 80):
            ids[i] = fc.submit(*request(3, i, REGIONS), key=f"q-{i}")
        one_down_s = time.monotonic() - started
        watcher = HeadWatcher(zk_uri)
        assert watcher.epoch() == epoch, "losing one server of three must not cause a failover"
        watcher.stop()

        # Quorum lost: submissions are refused with a clear error, not left hanging or accepted.
        leader_url = cluster.urls[int(cluster.leader(30)[1:])]
        down = next(i for i in range(3) if zk_ensemble.running(i))
        zk_ensemble.kill(down)
        refused = None
        deadline = time.monotonic() + 60
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=40) as http:
            while refused is None and time.monotonic() < deadline:
                procedure, args = request(3, 80, REGIONS)
                r = http.post(
                    f"{leader_url}/v1/transactions",
                    json={"procedure": procedure, "args": args},
                    headers={"Idempotency-Key": "q-80"},
                )
                if r.status_code == 503:
                    refused = r.json()["error"]
                else:
                    time.sleep(0.2)
        assert refused is not None, "the leader kept accepting work without a quorum"
        assert refused["code"] == "zookeeper_unavailable", refused
        assert "quorum" in refused["message"] and "127.0.0.1:" in refused["message"]  # names the ensemble

        # Quorum back: work resumes (the refused request, retried with its key, is made once).
        zk_ensemble.start_all(timeout=90)
        for i in range(80, 120):
            ids[i] = fc.submit(*request(3, i, REGIONS), key=f"q-{i}", deadline_s=120)
        txns = wait_all_final(zk_uri, 120, 300)
        report = verify(zk_uri, cluster.devices)
        assert sorted(ids.values()) == sorted(report["ids"]) == sorted(t.id for t in txns)
        assert report["not_final"] == [] and report["consistent"], report["differences"]
        assert report["violations"] == [] and report["duplicates"] == []
        print(
            f"\nQUORUM one server down: 40 submissions in {one_down_s:.2f} s; refused: {refused['message']}"
        )
    except BaseException:
        print(cluster.logs(30))
        raise
    finally:
        fc.close()
        cluster.stop()
