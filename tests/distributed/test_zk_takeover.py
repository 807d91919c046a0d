"""Taking the ZooKeeper store over under contention: a takeover whose compare-and-set loses the race
reads the head again and deposes the winner; one that never wins gives up at the store's timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.helpers import small_dc
from tropic.errors import StoreError
from tropic.model import STANDARD
from tropic.store.zk import LeadershipLost, ZooKeeperStore
from tropic.txn import State, Transaction


def _txn(i: int) -> Transaction:
    t = Transaction(i, "spawn_vm", {"name": f"t{i}"})
    t.times[State.SUBMITTED.value] = time.time()
    return t


def test_a_takeover_that_loses_the_race_reads_again_and_deposes_the_winner(
    zk_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ZooKeeperStore(zk_uri)
    first.init_model(small_dc())
    late, winner = ZooKeeperStore(zk_uri), ZooKeeperStore(zk_uri)
    real = late._writer.read_head
    reads: list[Any] = []

    def racing_read() -> Any:
        head = real()
        reads.append(head)
        if len(reads) == 1:
            assert winner.restore(STANDARD) is not None  # takes over between the read and the CAS
        return head

    monkeypatch.setattr(late._writer, "read_head", racing_read)
    try:
        assert late.restore(STANDARD) is not None
        assert len(reads) == 2  # the compare-and-set failed once, then the head was read again
        assert winner.epoch is not None and late.epoch == winner.epoch + 1
        winner.put_txn(_txn(1))
        with pytest.raises(LeadershipLost):
            winner.commit()
        late.put_txn(_txn(2))
        late.commit()
    finally:
        for s in (first, late, winner):
            s.close()


def test_a_takeover_that_never_wins_gives_up_at_the_timeout(
    zk_uri: str, zk_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ZooKeeperStore(zk_uri)
    first.init_model(small_dc())
    stuck = ZooKeeperStore(zk_uri, client=zk_client, timeout=5.0)
    stale = stuck._writer.read_head()
    other = ZooKeeperStore(zk_uri)
    other.restore(STANDARD)  # the head moves on; ``stuck`` keeps reading the old one
    attempts: list[Any] = []

    def stale_read() -> Any:
        attempts.append(stale)
        return stale

    monkeypatch.setattr(stuck._writer, "read_head", stale_read)
    try:
        with pytest.raises(StoreError, match="could not take over: other writers kept moving its head"):
            stuck.restore(STANDARD)
        assert len(attempts) > 1 and stuck.epoch is None
        other.put_txn(_txn(1))
        other.commit()  # the one that took over still writes
    finally:
        for s in (first, stuck, other):
            s.close()
