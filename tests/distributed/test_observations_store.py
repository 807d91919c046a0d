"""The knowledge base's rows in every store: round trips, queries, retention by age and size, and what
survives a restart (SQLite) and a takeover by another controller (ZooKeeper)."""

from __future__ import annotations

from typing import Any

import pytest

from core.helpers import small_dc
from distributed.conftest import Opener
from tropic.errors import InvalidArguments, StoreError
from tropic.model import STANDARD
from tropic.store.base import MemoryStore, Store
from tropic.store.observations import ObservationRow


def _writer(open_store: Opener) -> Store:
    store = open_store()
    if store.restore(STANDARD) is None:
        store.init_model(small_dc())
    return store


def _rows(n: int, start: float = 1_000.0, step: float = 60.0) -> list[ObservationRow]:
    out: list[ObservationRow] = []
    for i in range(n):
        at = start + i * step
        out.append((f"/compute/r1/host-{i % 3}/vm-{i % 5}", "cpu", (i % 10) / 10, at, "test"))
        out.append((f"region:r{i % 2}", "demand", float(i), at, "demand"))
    return out


def test_rows_round_trip_and_queries_filter_and_limit(open_store: Opener) -> None:
    store = _writer(open_store)
    rows = _rows(40)
    store.append_observations(rows[:30])
    store.append_observations(rows[30:])
    assert store.observations(limit=1000) == sorted(rows, key=lambda r: r[3])
    cpu = store.observations("/compute/", "cpu", limit=1000)
    assert cpu == [r for r in rows if r[1] == "cpu"]
    one = store.observations("/compute/r1/host-1/", "cpu", since=1_600.0, until=2_200.0)
    assert one == [r for r in cpu if r[0].startswith("/compute/r1/host-1/") and 1_600 <= r[3] < 2_200]
    assert one, "the window holds readings of host-1"
    last = store.observations("region:", "demand", limit=3)
    assert [r[2] for r in last] == [37.0, 38.0, 39.0]  # the newest three, oldest first
    assert store.observations("nothing-", limit=10) == []


def test_retention_by_age_and_by_size(open_store: Opener) -> None:
    store = _writer(open_store)
    rows = _rows(100, start=0.0, step=600.0)  # one row pair per ZooKeeper bucket
    store.append_observations(rows)
    removed = store.trim_observations(older_than=30_000.0)
    left = store.observations(limit=10_000)
    assert removed == 100 and len(left) == 100
    assert min(r[3] for r in left) >= 30_000.0
    removed = store.trim_observations(max_rows=40)
    left = store.observations(limit=10_000)
    assert removed == 60 and len(left) == 40
    assert min(r[3] for r in left) == max(r[3] for r in rows) - 19 * 600  # the newest ones stay
    assert store.trim_observations(max_rows=0) == 40
    assert store.observations(limit=10) == []


def test_rows_survive_a_restart_and_a_takeover(open_store: Opener) -> None:
    first = _writer(open_store)
    rows = _rows(25)
    first.append_observations(rows)
    first.close()
    second = _writer(open_store)  # a restarted (SQLite) or newly elected (ZooKeeper) controller's store
    assert second.observations(limit=1000) == sorted(rows, key=lambda r: r[3])
    more = _rows(5, start=10_000.0)
    second.append_observations(more)
    assert second.observations(since=10_000.0, limit=1000) == more


def test_bounded_under_a_stream(open_store: Opener) -> None:
    store = _writer(open_store)
    for k in range(30):
        store.append_observations(_rows(20, start=k * 20 * 60.0))
        store.trim_observations(older_than=k * 20 * 60.0 - 3_600.0, max_rows=200)
        assert len(store.observations(limit=100_000)) <= 200
    newest = store.observations(limit=1)
    assert newest and newest[0][3] == 29 * 20 * 60.0 + 19 * 60.0


def test_bad_rows_and_queries_are_refused_with_what_is_wrong(open_store: Opener) -> None:
    store = _writer(open_store)
    with pytest.raises(InvalidArguments, match="observation 1"):
        store.append_observations([("a", "cpu", 0.5, 1.0, ""), ("b", "cpu", float("nan"), 1.0, "")])
    with pytest.raises(InvalidArguments, match="empty subject"):
        store.append_observations([("", "cpu", 0.5, 1.0, "")])
    with pytest.raises(InvalidArguments, match="limit"):
        store.observations(limit=0)
    with pytest.raises(InvalidArguments, match="until"):
        store.observations(since=5.0, until=1.0)
    assert store.observations(limit=10) == []  # nothing of the refused batch was kept


def test_memory_store_keeps_rows_in_the_process() -> None:
    store = MemoryStore()
    store.append_observations(_rows(3))
    assert len(store.observations()) == 6
    assert store.trim_observations(max_rows=2) == 4


def test_a_zookeeper_store_that_is_not_the_writer_refuses_to_write(zk_uri: str) -> None:
    from tropic.store.zk import ZooKeeperStore

    writer = ZooKeeperStore(zk_uri, timeout=30)
    reader = ZooKeeperStore(zk_uri, timeout=30, read_only=True)
    try:
        writer.init_model(small_dc())
        writer.append_observations(_rows(2))
        assert len(reader.observations()) == 4
        with pytest.raises(StoreError, match="not the store's writer"):
            reader.append_observations(_rows(1))
    finally:
        reader.close()
        writer.close()


def test_a_new_leader_resumes_the_knowledge_base_where_the_old_one_stopped(open_store: Opener) -> None:
    from tropic.autopilot.base import CPU, Observation
    from tropic.autopilot.kb import KnowledgeBase, Retention
    from tropic.autopilot.predict import Predictor

    retention = Retention(trim_every_s=0, window=6)
    old = KnowledgeBase(_writer(open_store), retention)
    for k in range(10):
        old.record(
            [Observation(f"/vm-{i}", CPU, (k * i % 7) / 7, 1_000.0 + k * 300, "t") for i in range(4)],
            1_000.0 + k * 300,
        )
    now = 1_000.0 + 9 * 300
    new = KnowledgeBase(_writer(open_store), retention)  # the old leader is gone; its store is not read
    assert new.load(now) == 40
    for i in range(4):
        assert new.series(f"/vm-{i}", CPU) == old.series(f"/vm-{i}", CPU)
        assert Predictor().predict(new, f"/vm-{i}", CPU, now) == Predictor().predict(
            old, f"/vm-{i}", CPU, now
        )


def test_a_deposed_zookeeper_leader_writes_no_observations(zk_uri: str, zk_client: Any) -> None:
    from tropic.store.zk import LeadershipLost, ZooKeeperStore

    node = zk_client.create("/leader-", b"", ephemeral=True, sequence=True, makepath=True)
    store = ZooKeeperStore(zk_uri, timeout=30)
    try:
        store.init_model(small_dc())
        store.bind_election(node)
        store.append_observations(_rows(1))
        zk_client.delete(node)  # its election session ended: another controller may lead now
        with pytest.raises(LeadershipLost, match="election node"):
            store.append_observations(_rows(1, start=5_000.0))
        reader = ZooKeeperStore(zk_uri, timeout=30, read_only=True)
        try:
            assert len(reader.observations()) == 2  # only what it wrote while it led
        finally:
            reader.close()
    finally:
        store.close()
