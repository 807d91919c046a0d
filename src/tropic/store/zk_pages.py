"""Pages of the ZooKeeper store's history, read at the cost of the page, not of the history.

A page (:meth:`~tropic.store.zk.ZooKeeperStore.find_txns`) reads the records not in an archive chunk yet
(the live chunks and the log after the snapshot: bounded by the snapshot's period), then archive chunks
newest ids first, and stops as soon as no chunk left can hold an id above the page's last one. Chunks are
immutable, so the id range of each is learnt once (when first read) and kept by name: a few integers per
chunk, forgotten with the chunk. Finding one record by id reads only the chunks whose range holds it.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tropic.records.query import TxnQuery
from tropic.records.record import Transaction

Record = dict[str, Any]
ReadChunks = Callable[[list[str]], list[list[Record]]]  # chunk names -> their records

Range = tuple[int, int, int]  # a chunk's lowest and highest id, and its number of records

READ_CHUNKS = 8  # chunks read per round trip while paging at most


class ChunkRanges:
    """The id range (lowest, highest) and the size of each archive chunk read so far, by name."""

    def __init__(self) -> None:
        self._ranges: dict[str, Range] = {}
        self._lock = threading.Lock()
        self.read = 0  # chunks read by pages and look-ups (tests check a page's cost with it)

    def learn(self, name: str, records: list[Record]) -> None:
        found = _range(records)
        with self._lock:
            self._ranges[name] = found

    def known(self, names: list[str]) -> tuple[dict[str, Range], list[str]]:
        """The ranges known among ``names`` (the others forgotten: no snapshot names them any more) and
        the names whose range is not known yet."""
        with self._lock:
            current = set(names)
            for gone in [n for n in self._ranges if n not in current]:
                del self._ranges[gone]
            have = {n: self._ranges[n] for n in names if n in self._ranges}
        return have, [n for n in names if n not in have]


def page(
    recent: Iterable[Record],
    archives: list[str],
    ranges: ChunkRanges,
    read: ReadChunks,
    query: TxnQuery,
    want: int,
) -> list[Transaction]:
    """The ``want`` newest records matching ``query`` below its cursor: from ``recent`` (the records not in
    a chunk), then from the chunks ``archives`` in the order of their highest id."""
    before = query.before if query.before is not None else 2**62
    found: list[Transaction] = []  # matching records, any order

    def take(records: Iterable[Record]) -> None:
        for rec in records:
            if int(rec["id"]) < before:
                t = Transaction.from_dict(rec)
                if query.matches(t):
                    found.append(t)

    def enough(below: int) -> bool:
        """No record with an id at most ``below`` can enter the page any more."""
        if len(found) < want:
            return False
        return heapq.nlargest(want, (t.id for t in found))[-1] > below

    take(recent)
    known, unknown = ranges.known(archives)
    for lo in range(0, len(unknown), READ_CHUNKS):  # (once per chunk and process)
        part = unknown[lo : lo + READ_CHUNKS]
        for name, records in zip(part, _read(read, ranges, part), strict=True):
            known[name] = _range(records)
            take(records)
    order = sorted(
        (n for n in archives if n not in unknown and known[n][0] < before), key=lambda n: -known[n][1]
    )
    k = 0
    while k < len(order) and not enough(known[order[k]][1]):
        # The next chunks, as many as could fill the page (one round trip; at most READ_CHUNKS).
        part, size = [], 0
        while k + len(part) < len(order) and len(part) < READ_CHUNKS and size < want - len(found):
            part.append(order[k + len(part)])
            size += known[part[-1]][2]
        part = part or [order[k]]
        for records in _read(read, ranges, part):
            take(records)
        k += len(part)
    found.sort(key=lambda t: t.id, reverse=True)
    return found[:want]


def find(
    txn_id: int, recent: dict[int, Record], archives: list[str], ranges: ChunkRanges, read: ReadChunks
) -> Record | None:
    """The record of ``txn_id``, reading only the chunks whose range holds it."""
    if txn_id in recent:
        return recent[txn_id]
    known, unknown = ranges.known(archives)
    names = [n for n in archives if n in unknown or known[n][0] <= txn_id <= known[n][1]]
    for lo in range(0, len(names), READ_CHUNKS):
        for records in _read(read, ranges, names[lo : lo + READ_CHUNKS]):
            for rec in records:
                if int(rec["id"]) == txn_id:
                    return rec
    return None


def _read(read: ReadChunks, ranges: ChunkRanges, names: list[str]) -> list[list[Record]]:
    out = read(names)
    ranges.read += len(names)
    for name, records in zip(names, out, strict=True):
        ranges.learn(name, records)
    return out


def _range(records: list[Record]) -> Range:
    ids = [int(r["id"]) for r in records]
    return (min(ids), max(ids), len(ids)) if ids else (0, -1, 0)
