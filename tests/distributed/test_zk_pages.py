"""Pages of the ZooKeeper store's history (real ensemble) cost the page, not the history: once each
archive chunk's id range is known, a page reads only the chunks that can hold its records, a look-up by
id only the chunk holding it, and paging still finds every record exactly once, newest first."""

from __future__ import annotations

from core.helpers import small_dc
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.records.query import TxnQuery
from tropic.store.zk import ZooKeeperStore
from tropic.txn import Controller, State

TXNS = 240


def _pages(store: ZooKeeperStore, query: TxnQuery) -> list[int]:
    ids: list[int] = []
    before = query.before
    while True:
        page = store.find_txns(TxnQuery(state=query.state, before=before, limit=query.limit))
        if not page:
            return ids
        ids += [t.id for t in page]
        before = page[-1].id


def test_a_page_reads_only_the_chunks_it_needs_and_paging_finds_each_record_once(zk_uri: str) -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    store = ZooKeeperStore(zk_uri, snapshot_entries=2)  # a snapshot (new chunks) every two commits
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        # One at a time: many commits, so many archive chunks of a few records each.
        ids = [c.wait(c.submit("stop_vm", {"vm": f"/compute/nowhere/vm-{i}"}), 10).id for i in range(TXNS)]
        store.wait_background()
        chunks = len(store._snaps.index.archives)
        assert chunks >= 20
        newest_first = sorted(ids, reverse=True)
        assert _pages(store, TxnQuery(limit=7)) == newest_first  # (learns every chunk's range)
        assert _pages(store, TxnQuery(limit=50, state=State.ABORTED)) == newest_first
        assert _pages(store, TxnQuery(limit=9, state=State.COMMITTED)) == []
        store._ranges.read = 0
        assert [t.id for t in store.find_txns(TxnQuery(limit=5))] == newest_first[:5]
        newest = store._ranges.read
        mid = newest_first[TXNS // 2]
        store._ranges.read = 0
        assert [t.id for t in store.find_txns(TxnQuery(before=mid, limit=5))] == [
            mid - k for k in range(1, 6)
        ]
        deep = store._ranges.read
        store._ranges.read = 0
        found = store.get_txn(ids[3])
        assert found is not None and found.id == ids[3] and found.state is State.ABORTED
        one = store._ranges.read
        assert newest <= 3 and deep <= 3 and one <= 1, (newest, deep, one, chunks)  # of 20 or more
        assert sorted(store._history()) == sorted(ids)  # (a full read agrees)
    finally:
        c.stop()
        store.close()
