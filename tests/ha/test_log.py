"""The request log on the real ZooKeeper ensemble: Zab's order is the log order, snapshots round-trip
(chunked past the 1 MB node limit), truncation keeps what a live replica still needs."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.ha.contract import LogEntry, ReplicaInfo, Snapshot
from tropic.ha.log import CHUNK_BYTES, LogTruncated, RequestLog
from tropic.store.zkclient import open_client


def fresh(zk: Any) -> RequestLog:
    log = RequestLog(zk, f"job-{uuid.uuid4().hex[:8]}")
    log.ensure()
    return log


def test_the_log_order_is_the_append_order_of_every_writer(zk_client: Any) -> None:
    log = fresh(zk_client)
    got: dict[str, list[int]] = {}

    def writer(name: str) -> None:
        got[name] = [log.append(LogEntry(name, seq, {"op": "w", "n": seq})) for seq in range(15)]

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = log.entries()
    assert [i for i, _ in entries] == sorted(i for idx in got.values() for i in idx)  # each once, in order
    for name, indices in got.items():
        assert indices == sorted(indices)  # a writer's sequential appends keep their order
        assert [e.seq for _, e in entries if e.client == name] == list(range(15))
    assert log.size() == 60


@settings(max_examples=12)
@given(
    ops=st.lists(st.dictionaries(st.sampled_from("abc"), st.integers() | st.text(max_size=5)), max_size=12)
)
def test_entries_round_trip_in_order(zk_ensemble: Any, ops: list[dict[str, Any]]) -> None:
    zk = open_client(zk_ensemble.uri("/tropic-tests/ha-roundtrip"), connect_timeout=20)
    try:
        log = fresh(zk)
        indices = [log.append(LogEntry("c", n, op)) for n, op in enumerate(ops)]
        assert indices == sorted(set(indices))
        assert log.entries() == [
            (i, LogEntry("c", n, op)) for n, (i, op) in enumerate(zip(indices, ops, strict=True))
        ]
        assert log.entries(after=indices[-1]) == [] if indices else True
    finally:
        zk.stop()
        zk.close()


def test_a_large_snapshot_is_chunked_and_replaced_whole(zk_client: Any) -> None:
    log = fresh(zk_client)
    big = {"blob": "x" * (3 * CHUNK_BYTES), "n": 1}
    log.write_snapshot("r1", Snapshot(applied=41, state=big, sessions={"c": (3, {"ok": True})}))
    assert len(zk_client.get_children(f"{log.snapshots_path}/r1")) == 4  # 1.5 MB+ in 512 KB chunks
    snap = log.read_snapshot("r1")
    assert snap == Snapshot(applied=41, state=big, sessions={"c": (3, {"ok": True})})
    log.write_snapshot("r1", Snapshot(applied=50, state={"n": 2}))
    assert zk_client.get_children(f"{log.snapshots_path}/r1") == []  # the old chunks are gone
    assert log.read_snapshot("r1") == Snapshot(applied=50, state={"n": 2})
    assert log.snapshots() == {"r1": 50}


def test_truncation_keeps_what_every_live_replica_needs(
    zk_ensemble: Any, zk_client: Any, zk_uri: str
) -> None:
    log = fresh(zk_client)
    indices = [log.append(LogEntry("c", n, {"n": n})) for n in range(30)]
    other = open_client(zk_uri, connect_timeout=20)  # b's session
    try:
        log.register(ReplicaInfo("a", "127.0.0.1:1", applied=indices[-1]))
        RequestLog(other, log.job).register(ReplicaInfo("b", "127.0.0.1:2", applied=indices[-1]))
        log.write_snapshot("a", Snapshot(applied=indices[20], state={}))
        assert log.truncate() == 0, "b has no snapshot yet: the whole log is kept"
        assert log.size() == 30
        log.write_snapshot("b", Snapshot(applied=indices[9], state={}))
        log.write_snapshot("gone", Snapshot(applied=indices[2], state={}))  # not live: does not count
        assert log.truncate() == indices[9] + 1
        assert [i for i, _ in log.entries()] == indices[10:]
        assert log.truncated() == indices[9] + 1
        assert "gone" not in log.snapshots(), "a dead replica's snapshot the log cannot follow is dropped"
        with pytest.raises(LogTruncated):
            log.read([indices[0]])
        newest = log.newest_usable_snapshot()
        assert newest is not None and newest.applied == indices[20]
    finally:
        other.stop()
        other.close()
    # b's session ended: only a's snapshot counts now
    assert log.truncate() == indices[20] + 1
    assert [i for i, _ in log.entries()] == indices[21:]
