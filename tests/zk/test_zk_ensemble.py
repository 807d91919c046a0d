"""tropic's ZooKeeper client against a real 3-server ensemble: chroot, losing one server, losing quorum."""

from __future__ import annotations

import time
from typing import Any

import pytest

from zkharness import ZooKeeperEnsemble, free_ports

zkclient = pytest.importorskip("tropic.store.zkclient", reason="kazoo is not installed")
from kazoo.client import KazooClient  # noqa: E402

from tropic.errors import StoreError  # noqa: E402
from tropic.store.zkclient import ZooKeeperUnavailable, bounded_call, open_client  # noqa: E402


def _create(client: Any, path: str, value: bytes, timeout: float = 20.0) -> Any:
    return bounded_call(
        client, lambda: client.create_async(path, value), what=f"create {path}", timeout=timeout
    )


def test_ensemble_has_one_leader_and_two_followers(zk_ensemble: ZooKeeperEnsemble) -> None:
    zk_ensemble.restore()
    modes = sorted(str(zk_ensemble.mode(i)) for i in range(3))
    assert modes == ["follower", "follower", "leader"], zk_ensemble.describe()
    assert zk_ensemble.connect_string.count("127.0.0.1:") == 3


def test_create_and_get_through_the_chroot(
    zk_ensemble: ZooKeeperEnsemble, zk_uri: str, zk_client: Any
) -> None:
    zk_client.create("/txn/0001", b"submitted", makepath=True)
    data, stat = zk_client.get("/txn/0001")
    assert data == b"submitted"
    assert stat.version == 0
    assert zk_client.get_children("/") == ["txn"]

    chroot = zkclient.parse_zk_uri(zk_uri).chroot
    root = KazooClient(hosts=zk_ensemble.connect_string)
    root.start(timeout=20)
    try:  # the same node, seen from outside the chroot
        assert root.get(f"{chroot}/txn/0001")[0] == b"submitted"
    finally:
        root.stop()
        root.close()


def test_missing_chroot_is_refused_unless_created(zk_uri: str) -> None:
    with pytest.raises(StoreError, match="does not exist") as info:
        open_client(zk_uri, create_chroot=False)
    assert not isinstance(info.value, ZooKeeperUnavailable)
    open_client(zk_uri).stop()  # creates it
    client = open_client(zk_uri, create_chroot=False)
    try:
        assert client.get_children("/") == []
    finally:
        client.stop()
        client.close()


# A call with a timeout must end by itself: these tests bound how long it takes by its timeout plus this
# much, generous so that a loaded machine (slow, not wrong) passes; what they rule out is a call that
# retries or waits without bound (which the test's own timeout would otherwise be the only end of).
SLACK_S = 15.0


def test_unreachable_ensemble_names_its_hosts() -> None:
    ports = free_ports(2)  # nobody listens there
    uri = f"zk://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/tropic"
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable) as info:
        open_client(uri, connect_timeout=1.5)
    assert time.monotonic() - started < 1.5 + SLACK_S
    assert f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}" in info.value.message
    assert isinstance(info.value, StoreError)
    assert info.value.to_dict()["code"] == "zookeeper_unavailable"


def test_writes_go_on_when_the_leader_is_killed(zk_ensemble: ZooKeeperEnsemble, zk_client: Any) -> None:
    _create(zk_client, "/before", b"1")
    leader = zk_ensemble.leader()
    assert leader is not None
    zk_ensemble.kill(leader)
    survivors = [i for i in range(3) if i != leader]
    zk_ensemble.wait_serving(survivors, timeout=30)  # two of three: still a quorum, a new leader

    for n in range(20):
        _create(zk_client, f"/after-{n:02d}", str(n).encode())
    assert len(zk_client.get_children("/")) == 21
    assert zk_client.get("/before")[0] == b"1"


def test_quorum_loss_fails_in_bounded_time_then_recovers(
    zk_ensemble: ZooKeeperEnsemble, zk_uri: str, zk_client: Any
) -> None:
    _create(zk_client, "/before", b"kept")
    leader = zk_ensemble.leader()
    assert leader is not None
    killed = [leader, (leader + 1) % 3]
    for index in killed:
        zk_ensemble.kill(index)
    survivor = next(i for i in range(3) if i not in killed)

    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable) as info:
        _create(zk_client, "/during", b"lost?", timeout=3.0)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0 + SLACK_S, f"the write took {elapsed:.1f} s to fail"
    assert zk_ensemble.connect_string in info.value.message
    assert "outcome is unknown" in info.value.message

    zk_ensemble.wait_not_serving(survivor, timeout=30)
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable, match=r"cannot connect to ZooKeeper at 127\.0\.0\.1:"):
        open_client(zk_uri, connect_timeout=2.0)  # a server without quorum refuses sessions
    assert time.monotonic() - started < 2.0 + SLACK_S

    for index in killed:
        zk_ensemble.start(index)
    zk_ensemble.wait_serving(timeout=60)
    # The same client reconnects by itself (its connection retry policy never gives up).
    _create(zk_client, "/after", b"back", timeout=30.0)
    assert zk_client.get("/before")[0] == b"kept"
    assert zk_client.get("/after")[0] == b"back"
