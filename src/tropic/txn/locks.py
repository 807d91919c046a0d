"""Hierarchical (multi-granularity) locks on resource paths.

A lock on a path covers its whole subtree: writing ``/compute/r1/h1/vm3`` conflicts with writing or reading
``/compute/r1/h1`` but not with anything under ``/compute/r1/h2``. Each lock puts an intention lock on every
ancestor (IR/IW), as in Gray's granular locking. Acquisition is all-or-nothing and never waits: a
conflicting transaction is deferred by the controller, so there are no deadlocks.

The lock table answers "who blocks this request" without scanning every holder of a path: holders are
indexed per path and mode in the order they came, with the smallest id of each mode at hand, so a
conflict check costs O(locks requested), not O(holders), even when thousands of deferred transactions
reserve the same host (see "Scheduler under a backlog" in docs/benchmarks.md).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tropic.model import ancestors

IR, IW, R, SIX, W = 0, 1, 2, 3, 4
MODE_NAMES = ("IR", "IW", "R", "SIX", "W")

# COMPATIBLE[held][requested]; SIX = read the subtree and write some of it (R + IW)
COMPATIBLE = (
    (True, True, True, True, False),  # IR
    (True, True, False, False, False),  # IW
    (True, False, True, False, False),  # R
    (True, False, False, False, False),  # SIX
    (False, False, False, False, False),  # W
)


@dataclass(frozen=True, slots=True)
class LockSet:
    """The minimal locks covering a transaction's read and write sets."""

    reads: frozenset[str]
    writes: frozenset[str]

    @staticmethod
    def from_sets(reads: Iterable[str], writes: Iterable[str]) -> LockSet:
        w = set(writes)
        r = set(reads) - w
        # A lock covers its subtree: drop paths already covered by a lock on an ancestor.
        anc = _ancestors
        w_min = {p for p in w if w.isdisjoint(anc(p))}
        r_min = {p for p in r if w_min.isdisjoint(anc(p)) and r.isdisjoint(anc(p))}
        return LockSet(frozenset(r_min), frozenset(w_min))

    def requests(self) -> dict[str, int]:
        """Path -> the one mode this transaction needs there (its own lock joined with intentions)."""
        out: dict[str, int] = {}
        for mode, intent, paths in ((W, IW, self.writes), (R, IR, self.reads)):
            for p in paths:
                out[p] = _join(out.get(p), mode)
                for a in _ancestors(p):
                    out[a] = _join(out.get(a), intent)
        return out

    def overlaps(self, paths: Iterable[str]) -> bool:
        """Does any lock of this set cover, or lie under, one of ``paths``?"""
        mine = self.reads | self.writes
        for p in paths:
            for m in mine:
                if m == p or m.startswith(p + "/") or p.startswith(m + "/") or p == "/" or m == "/":
                    return True
        return False


_ANCESTORS: dict[str, tuple[str, ...]] = {}
_ANCESTORS_MAX = 200_000  # paths kept; the cache starts afresh beyond (a long-lived controller stays bounded)


def _ancestors(path: str) -> tuple[str, ...]:
    """:func:`tropic.model.ancestors` as a tuple, cached: lock sets ask for the same hosts again and again."""
    found = _ANCESTORS.get(path)
    if found is None:
        if not path.startswith("/"):
            return ()  # not a tree path (a name): no ancestors to lock (and no walk that never ends)
        if len(_ANCESTORS) >= _ANCESTORS_MAX:
            _ANCESTORS.clear()
        found = _ANCESTORS[path] = tuple(ancestors(path))
    return found


def _join(held: int | None, mode: int) -> int:
    """The weakest single mode at least as strong as both."""
    if held is None or held == mode:
        return mode
    if W in (held, mode):
        return W
    if SIX in (held, mode) or {held, mode} == {IW, R}:
        return SIX
    return max(held, mode)  # IR+IW -> IW, IR+R -> R


# For each requested mode, the held modes that conflict with it.
_CONFLICTS = tuple(tuple(h for h in range(5) if not COMPATIBLE[h][m]) for m in range(5))


class _PathHolders:
    """The holders of one path, per mode, each mode's in arrival order (``seq``: when the holder came to
    this path), with a heap of each mode's ids for "is any holder older than X" in O(1)."""

    __slots__ = ("by_mode", "ids")

    def __init__(self) -> None:
        self.by_mode: tuple[dict[int, int], ...] = ({}, {}, {}, {}, {})  # mode -> {txn: seq}, seq order
        self.ids: tuple[list[int], ...] = ([], [], [], [], [])  # mode -> heap of ids (stale ones lazily)

    def add(self, txn: int, mode: int, seq: int) -> None:
        d = self.by_mode[mode]
        last = next(reversed(d.values()), -1) if d else -1
        d[txn] = seq
        if seq < last:  # a holder changing mode keeps its place: restore the order (rare)
            ordered = dict(sorted(d.items(), key=lambda kv: kv[1]))
            d.clear()
            d.update(ordered)
        heap = self.ids[mode]
        heapq.heappush(heap, txn)
        if len(heap) > 2 * len(d) + 16:  # drop stale ids (a busy path never empties its heap otherwise)
            heap[:] = list(d)
            heapq.heapify(heap)

    def remove(self, txn: int, mode: int) -> None:
        del self.by_mode[mode][txn]

    def oldest(self, mode: int) -> int | None:
        """The smallest id holding ``mode`` here."""
        d, heap = self.by_mode[mode], self.ids[mode]
        while heap and heap[0] not in d:
            heapq.heappop(heap)
        return heap[0] if heap else None


class LockTable:
    """Who holds which mode on which path. Used by the logical thread only (no internal locking).

    Per path it keeps a count per mode, so a conflict check costs O(locks requested), not O(holders):
    every transaction holds intention locks on ``/`` and its other ancestors. The blocker it names is the
    first conflicting holder to have come to the path (as :meth:`conflict_by_scan`, the plain definition,
    finds it), looked up per mode instead of by a scan.
    """

    def __init__(self) -> None:
        self._held: dict[str, dict[int, int]] = {}  # path -> {txn: mode}, in arrival order
        self._counts: dict[str, list[int]] = {}  # path -> holders per mode
        self._index: dict[str, _PathHolders] = {}  # path -> holders per mode, in arrival order
        self._seq: dict[str, dict[int, int]] = {}  # path -> {txn: when it came to the path}
        self._by_txn: dict[int, dict[str, int]] = {}
        self._txn_ids: list[int] = []  # heap of holders' ids (stale ones dropped lazily)
        self._arrivals = itertools.count()
        self.version = 0  # changes with every force and release: equal versions, equal answers

    def conflict(self, txn: int, wanted: dict[str, int], *, before: int | None = None) -> int | None:
        """The id of a transaction whose locks conflict with ``wanted``, or None. With ``before``, only
        holders with a smaller id count (reservations of older deferred transactions). The hot path:
        :meth:`_contended` inlined."""
        counts = self._counts
        mine = self._by_txn.get(txn)
        for path, mode in wanted.items():
            c = counts.get(path)
            if c is None:
                continue
            own = mine.get(path) if mine else None
            for h in _CONFLICTS[mode]:
                if c[h] - (1 if own == h else 0) > 0:
                    blocker = self._first(txn, path, mode, before)
                    if blocker is not None:
                        return blocker
                    break
        return None

    def _contended(self, txn: int, wanted: dict[str, int]) -> Iterator[tuple[str, int]]:
        """The requested ``(path, mode)`` pairs some other transaction holds in a conflicting mode (by
        the per-mode counts, not counting ``txn``'s own hold), in request order."""
        counts = self._counts
        mine = self._by_txn.get(txn)
        for path, mode in wanted.items():
            c = counts.get(path)
            if c is None:
                continue
            own = mine.get(path) if mine else None
            if any(c[h] - (1 if own == h else 0) > 0 for h in _CONFLICTS[mode]):
                yield path, mode

    def _first(self, txn: int, path: str, mode: int, before: int | None) -> int | None:
        """The first holder to have come to ``path`` (other than ``txn``, older than ``before``) whose mode
        conflicts with ``mode``."""
        index = self._index[path]
        best, best_seq = None, -1
        for h in _CONFLICTS[mode]:
            d = index.by_mode[h]
            if not d:
                continue
            if before is not None:
                oldest = index.oldest(h)
                if oldest is None or oldest >= before:
                    continue  # every holder of this mode is newer
            for other, seq in d.items():
                if best is not None and seq > best_seq:
                    break
                if other == txn or (before is not None and other >= before):
                    continue
                best, best_seq = other, seq
                break
        return best

    def conflict_by_scan(self, txn: int, wanted: dict[str, int], *, before: int | None = None) -> int | None:
        """:meth:`conflict` by its plain definition: for the first requested path with a conflicting
        holder, scan the path's holders in arrival order. The reference the indexed lookup is tested and
        measured against (it costs O(holders) per path)."""
        for path, mode in self._contended(txn, wanted):
            for other, other_mode in self._held[path].items():
                if other == txn or (before is not None and other >= before):
                    continue
                if not COMPATIBLE[other_mode][mode]:
                    return other
        return None

    def try_acquire(self, txn: int, locks: LockSet) -> int | None:
        """Take every lock or none; return the blocking transaction's id on conflict."""
        wanted = locks.requests()
        blocker = self.conflict(txn, wanted)
        if blocker is not None:
            return blocker
        self.force(txn, wanted)
        return None

    def force(self, txn: int, wanted: dict[str, int]) -> None:
        """Record ``wanted`` as held by ``txn`` (the caller has checked for conflicts)."""
        self.version += 1
        mine = self._by_txn.get(txn)
        if mine is None:
            mine = self._by_txn[txn] = {}
            heapq.heappush(self._txn_ids, txn)
        held, counts, index, seqs = self._held, self._counts, self._index, self._seq
        for path, mode in wanted.items():
            holders = held.get(path)
            if holders is None:
                held[path] = holders = {}
                counts[path] = [0, 0, 0, 0, 0]
                index[path] = _PathHolders()
                seqs[path] = {}
            old = holders.get(txn)
            if old is not None:
                counts[path][old] -= 1
                index[path].remove(txn, old)
                seq = seqs[path][txn]
            else:
                seq = seqs[path][txn] = next(self._arrivals)
            holders[txn] = mode
            counts[path][mode] += 1
            index[path].add(txn, mode, seq)
            mine[path] = mode

    def release(self, txn: int) -> dict[str, int]:
        """Drop every lock of ``txn``; returns what it held (empty if nothing)."""
        held, counts, index, seqs = self._held, self._counts, self._index, self._seq
        mine = self._by_txn.pop(txn, {})
        if mine:
            self.version += 1
        for path, mode in mine.items():
            holders = held.get(path)
            if holders is not None:
                holders.pop(txn, None)
                if holders:
                    counts[path][mode] -= 1
                    index[path].remove(txn, mode)
                    del seqs[path][txn]
                else:
                    del held[path]
                    del counts[path]
                    del index[path]
                    del seqs[path]
        ids = self._txn_ids
        if len(ids) > 2 * len(self._by_txn) + 16:
            ids[:] = list(self._by_txn)
            heapq.heapify(ids)
        return mine

    def oldest(self) -> int | None:
        """The smallest id holding anything (None when the table is empty)."""
        ids, by_txn = self._txn_ids, self._by_txn
        while ids and ids[0] not in by_txn:
            heapq.heappop(ids)
        return ids[0] if ids else None

    def requested(self, txn: int) -> dict[str, int] | None:
        """What ``txn`` holds (path -> mode), as it was forced; None if nothing. Not to be changed."""
        return self._by_txn.get(txn)

    def holders(self) -> set[int]:
        return set(self._by_txn)

    def held_by(self, txn: int) -> dict[str, str]:
        return {p: MODE_NAMES[m] for p, m in self._by_txn.get(txn, {}).items()}

    def __len__(self) -> int:
        return len(self._held)
