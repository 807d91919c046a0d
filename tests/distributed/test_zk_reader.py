"""A read-only restore of a live ZooKeeper store: the writer may make a new snapshot and collect the old
one (its index, the log entries it covered, its blobs) between the reader's read of the head and its
reads of what the head named. The reader then starts again from the new head, a bounded number of
times, and never fails with a raw ZooKeeper error or a false "corrupt store"."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from core.helpers import small_dc
from tropic.errors import CorruptStore, StoreError
from tropic.model import STANDARD
from tropic.store.base import Restored
from tropic.store.zk import READ_RETRY, Paths, ZooKeeperStore
from tropic.txn import State, Transaction


def _txn(i: int) -> Transaction:
    t = Transaction(i, "spawn_vm", {"name": f"t{i}"})
    t.times[State.SUBMITTED.value] = time.time()
    return t


class Writer:
    """The store's leader: commits transactions; ``compact`` makes a new snapshot current and collects
    the previous one (as a busy leader does between a reader's reads)."""

    def __init__(self, uri: str) -> None:
        self.store = ZooKeeperStore(uri, snapshot_entries=2)
        self.store.init_model(small_dc())
        self.ids = 0

    def commit(self) -> None:
        self.ids += 1
        self.store.put_txn(_txn(self.ids))
        self.store.commit()
        self.store.wait_background()

    def compact(self) -> None:
        before = self.store.snapshots
        while self.store.snapshots < before + 2:  # the second switch collects the first new snapshot's
            self.commit()  # predecessor: what a reader of the old head named is gone
        self.commit()
        self.commit()


class InterruptedReader(ZooKeeperStore):
    """A read-only store whose reads of the blobs a head named are preceded, ``times`` times, by
    ``meanwhile`` (the writer moving on)."""

    def __init__(self, uri: str, meanwhile: Callable[[], None], times: int) -> None:
        super().__init__(uri, read_only=True)
        self.meanwhile = meanwhile
        self.times = times
        self.reads = 0

    def _get_many(self, paths: list[str]) -> list[bytes]:
        self.reads += 1
        if self.reads <= self.times:
            self.meanwhile()
        return super()._get_many(paths)


def _read(reader: ZooKeeperStore) -> Restored | None:
    try:
        return reader.restore(STANDARD)
    finally:
        reader.close()


def test_a_reader_overtaken_by_a_snapshot_starts_again_from_the_new_head(zk_uri: str) -> None:
    writer = Writer(zk_uri)
    try:
        writer.commit()
        reader = InterruptedReader(zk_uri, writer.compact, times=1)
        restored = _read(reader)
        assert reader.reads == 2  # the first attempt found its snapshot collected, the second did not
        assert restored is not None
        assert [t.id for t in restored.txns] == list(range(1, writer.ids + 1))
    finally:
        writer.store.close()


def test_a_reader_overtaken_every_time_gives_up_with_a_store_error(zk_uri: str) -> None:
    writer = Writer(zk_uri)
    try:
        writer.commit()
        attempts = READ_RETRY.attempts
        assert attempts is not None
        reader = InterruptedReader(zk_uri, writer.compact, times=attempts)
        with pytest.raises(StoreError, match="kept changing") as info:
            _read(reader)
        assert not isinstance(info.value, CorruptStore)
        assert reader.reads == attempts
    finally:
        writer.store.close()


def test_missing_data_under_an_unchanged_head_is_corruption(zk_uri: str, zk_client: object) -> None:
    writer = Writer(zk_uri)
    try:
        writer.commit()
        writer.commit()
        head = writer.store.client.get_children(Paths.WAL)
        writer.store.client.delete(f"{Paths.WAL}/{max(head, key=int)}")  # lost, not collected
        with pytest.raises(CorruptStore, match="incomplete"):
            _read(ZooKeeperStore(zk_uri, read_only=True))
    finally:
        writer.store.close()
