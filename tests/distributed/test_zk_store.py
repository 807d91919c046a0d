"""What only the ZooKeeper store has: fencing of a deposed writer, chunked group commits under the 1 MB
request limit, snapshots and log compaction, waiting out a lost quorum, refusing foreign data."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from core.helpers import small_dc, spawn
from tropic.drivers import SimDriver
from tropic.errors import CorruptStore
from tropic.model import STANDARD, project
from tropic.store.base import Restored
from tropic.store.zk import MAX_ENTRY, LeadershipLost, Paths, ZooKeeperStore
from tropic.txn import Controller, State, Transaction
from zkharness import ZooKeeperEnsemble


def _read(uri: str) -> Restored | None:
    """What a new reader finds, without taking the store over."""
    store = ZooKeeperStore(uri, read_only=True)
    try:
        return store.restore(STANDARD)
    finally:
        store.close()


def _txn(i: int, padding: int = 0) -> Transaction:
    t = Transaction(i, "spawn_vm", {"name": f"t{i}", "note": "x" * padding})
    t.times[State.SUBMITTED.value] = time.time()
    return t


def test_a_deposed_writer_never_writes_again(zk_uri: str) -> None:
    first = ZooKeeperStore(zk_uri)
    first.init_model(small_dc())
    first.put_txn(_txn(1))
    first.commit()
    second = ZooKeeperStore(zk_uri)
    restored = second.restore(STANDARD)  # takes over: bumps the epoch
    assert restored is not None and [t.id for t in restored.txns] == [1]
    assert second.epoch == (first.epoch or 0) + 1
    first.put_txn(_txn(2))
    with pytest.raises(LeadershipLost, match="another controller took over"):
        first.commit()
    first.put_txn(_txn(3))
    with pytest.raises(LeadershipLost):  # and for good, even with nothing new in the way
        first.commit()
    second.put_txn(_txn(4))
    second.commit()
    final = _read(zk_uri)
    assert final is not None and [t.id for t in final.txns] == [1, 4]
    for s in (first, second):
        s.close()


def test_the_election_node_fences_every_commit(zk_uri: str, zk_client: Any) -> None:
    zk_client.ensure_path(Paths.ELECTION)
    node = zk_client.create(f"{Paths.ELECTION}/lock-", b"", ephemeral=True, sequence=True)
    store = ZooKeeperStore(zk_uri)
    store.bind_election(node)
    store.init_model(small_dc())
    store.put_txn(_txn(1))
    store.commit()
    zk_client.delete(node)  # as if the election session had expired
    store.put_txn(_txn(2))
    with pytest.raises(LeadershipLost, match="election node"):
        store.commit()
    store.close()


def test_a_batch_larger_than_a_request_is_split_between_transactions(zk_uri: str) -> None:
    store = ZooKeeperStore(zk_uri)
    store.init_model(small_dc())
    padding = 20_000
    count = 3 * MAX_ENTRY // padding  # about three requests' worth
    for i in range(1, count + 1):
        store.put_txn(_txn(i, padding))
    seq_before = store.head_info["seq"]
    store.commit()
    assert store.head_info["seq"] - seq_before >= 3  # several atomic multis
    restored = _read(zk_uri)
    assert restored is not None and [t.id for t in restored.txns] == list(range(1, count + 1))
    store.close()


def test_snapshots_compact_the_log_and_restore_the_same_state(zk_uri: str, zk_client: Any) -> None:
    model = small_dc(hosts=6, memory_mib=10**6)
    sim = SimDriver()
    sim.load(project(model))
    store = ZooKeeperStore(zk_uri, snapshot_entries=5)
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        for i in range(60):
            c.wait(c.submit("spawn_vm", spawn("r1", 1 + i % 6, f"s{i}", memory_mib=64)), 20)
            if i % 3 == 0:
                c.wait(c.submit("stop_vm", {"vm": f"/compute/r1/host-0{1 + i % 6}/s{i}"}), 20)
        store.wait_background()
        c.wait(c.submit("spawn_vm", spawn("r2", 1, "last")), 20)  # switches to the latest snapshot
        store.wait_background()
    finally:
        c.stop()
    assert store.snapshots >= 5
    assert len(zk_client.get_children(Paths.WAL)) <= 12  # the log a snapshot covers is deleted
    assert len(zk_client.get_children(Paths.SNAP)) <= 2
    restored = _read(zk_uri)
    assert restored is not None
    assert restored.model.nodes == c.model.nodes and restored.model.kids == c.model.kids
    assert [(t.id, t.state) for t in restored.txns] == [(t.id, t.state) for t in c.transactions()]
    assert all(len(t.actions) == len(c.get(t.id).actions) for t in restored.txns)
    store.close()


def test_a_foreign_chroot_is_refused_untouched(zk_uri: str, zk_client: Any) -> None:
    zk_client.create(Paths.HEAD, b'{"some": "other application"}')
    store = ZooKeeperStore(zk_uri)
    with pytest.raises(CorruptStore, match="not a tropic store"):
        store.restore(STANDARD)
    store.close()
    assert zk_client.get(Paths.HEAD)[0] == b'{"some": "other application"}'


def test_a_commit_waits_out_a_lost_quorum_and_nothing_is_lost(
    zk_ensemble: ZooKeeperEnsemble, zk_uri: str
) -> None:
    store = ZooKeeperStore(zk_uri, session_timeout=30)
    store.init_model(small_dc())
    store.put_txn(_txn(1))
    store.commit()
    zk_ensemble.kill(1)
    zk_ensemble.kill(2)
    store.put_txn(_txn(2))
    done = threading.Event()
    errors: list[BaseException] = []

    def commit() -> None:
        try:
            store.commit()
        except BaseException as e:
            errors.append(e)
        done.set()

    threading.Thread(target=commit, daemon=True).start()
    assert not done.wait(3), "a commit cannot succeed without a quorum"
    zk_ensemble.start(1)
    zk_ensemble.start(2)
    assert done.wait(90), "the commit did not resume when the quorum came back"
    assert errors == []
    restored = _read(zk_uri)
    assert restored is not None and [t.id for t in restored.txns] == [1, 2]
    store.close()


def test_idempotency_keys_survive_takeovers_and_snapshots(zk_uri: str) -> None:
    first = ZooKeeperStore(zk_uri, snapshot_entries=3)
    first.init_model(small_dc())
    first.bind_key(1, "key-1", "fp-1")
    first.put_txn(_txn(1))
    first.commit()
    second = ZooKeeperStore(zk_uri, snapshot_entries=3)
    second.restore(STANDARD)  # the key is only in the log here...
    assert second.lookup_key("key-1") == (1, "fp-1")
    for i in range(2, 12):  # ... until a snapshot covers that log entry and it is deleted
        second.put_txn(_txn(i))
        second.commit()
        second.wait_background()
    assert second.snapshots >= 2
    third = ZooKeeperStore(zk_uri, read_only=True)
    third.restore(STANDARD)
    assert third.lookup_key("key-1") == (1, "fp-1")
    for s in (first, second, third):
        s.close()


def test_a_retry_during_a_lost_quorum_gets_the_first_transaction_not_a_second(
    zk_ensemble: ZooKeeperEnsemble, zk_uri: str
) -> None:
    """A submission refused with 503 while the quorum is away is still queued for the store: its retry
    with the same key must wait for it and get it back, not make the procedure twice."""
    from tropic.cluster.gate import DurableKeys
    from tropic.records import key_id
    from tropic.store.zkclient import ZooKeeperUnavailable

    store = ZooKeeperStore(zk_uri, session_timeout=30)
    store.init_model(small_dc())
    keys = DurableKeys(store)
    made: list[int] = []

    def create() -> int:
        made.append(99)
        return 99

    zk_ensemble.kill(1)
    zk_ensemble.kill(2)
    store.bind_key(1, key_id("ops", "k-1"), "fp")
    store.put_txn(_txn(1))
    committed = threading.Event()
    threading.Thread(target=lambda: (store.commit(), committed.set()), daemon=True).start()

    keys.pending_wait_s = 0.5  # still no quorum: the retry is refused again, clearly
    with pytest.raises(ZooKeeperUnavailable, match="transaction 1, made for this Idempotency-Key"):
        keys.run("ops", "k-1", "fp", create)
    keys.pending_wait_s = 90.0
    answers: list[tuple[int, bool]] = []
    retry = threading.Thread(target=lambda: answers.append(keys.run("ops", "k-1", "fp", create)))
    retry.start()
    time.sleep(1)
    assert answers == [], "the retry answered before the first transaction was stored"
    zk_ensemble.start(1)
    zk_ensemble.start(2)
    retry.join(90)
    assert committed.wait(30)
    assert answers == [(1, True)] and made == []
    restored = _read(zk_uri)
    assert restored is not None and [t.id for t in restored.txns] == [1]
    store.close()
