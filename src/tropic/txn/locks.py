"""Hierarchical (multi-granularity) locks on resource paths.

A lock on a path covers its whole subtree: writing ``/compute/r1/h1/vm3`` conflicts with writing or reading
``/compute/r1/h1`` but not with anything under ``/compute/r1/h2``. Each lock puts an intention lock on every
ancestor (IR/IW), as in Gray's granular locking. Acquisition is all-or-nothing and never waits: a
conflicting transaction is deferred by the controller, so there are no deadlocks.
"""

from __future__ import annotations

from collections.abc import Iterable
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
        w_min = {p for p in w if not any(a in w for a in ancestors(p))}
        r_min = {p for p in r if not any(a in w_min or a in r for a in ancestors(p))}
        return LockSet(frozenset(r_min), frozenset(w_min))

    def requests(self) -> dict[str, int]:
        """Path -> the one mode this transaction needs there (its own lock joined with intentions)."""
        out: dict[str, int] = {}
        for mode, intent, paths in ((W, IW, self.writes), (R, IR, self.reads)):
            for p in paths:
                out[p] = _join(out.get(p), mode)
                for a in ancestors(p):
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


class LockTable:
    """Who holds which mode on which path. Used by the logical thread only (no internal locking).

    Per path it keeps a count per mode, so a conflict check costs O(locks requested), not O(holders):
    every transaction holds intention locks on ``/`` and its other ancestors.
    """

    def __init__(self) -> None:
        self._held: dict[str, dict[int, int]] = {}  # path -> {txn: mode}
        self._counts: dict[str, list[int]] = {}  # path -> holders per mode
        self._by_txn: dict[int, dict[str, int]] = {}

    def conflict(self, txn: int, wanted: dict[str, int], *, before: int | None = None) -> int | None:
        """The id of a transaction whose locks conflict with ``wanted``, or None. With ``before``, only
        holders with a smaller id count (reservations of older deferred transactions)."""
        counts = self._counts
        mine = self._by_txn.get(txn)
        for path, mode in wanted.items():
            c = counts.get(path)
            if c is None:
                continue
            own = mine.get(path) if mine else None
            for h in _CONFLICTS[mode]:
                n = c[h] - (1 if own == h else 0)
                if n > 0:
                    blocker = self._blocker(txn, path, mode, before)
                    if blocker is not None:
                        return blocker
                    break
        return None

    def _blocker(self, txn: int, path: str, mode: int, before: int | None) -> int | None:
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
        mine = self._by_txn.setdefault(txn, {})
        held, counts = self._held, self._counts
        for path, mode in wanted.items():
            holders = held.get(path)
            if holders is None:
                held[path] = holders = {}
                counts[path] = [0, 0, 0, 0, 0]
            old = holders.get(txn)
            if old is not None:
                counts[path][old] -= 1
            holders[txn] = mode
            counts[path][mode] += 1
            mine[path] = mode

    def release(self, txn: int) -> dict[str, int]:
        """Drop every lock of ``txn``; returns what it held (empty if nothing)."""
        held, counts = self._held, self._counts
        mine = self._by_txn.pop(txn, {})
        for path, mode in mine.items():
            holders = held.get(path)
            if holders is not None:
                holders.pop(txn, None)
                if holders:
                    counts[path][mode] -= 1
                else:
                    del held[path]
                    del counts[path]
        return mine

    def holders(self) -> set[int]:
        return set(self._by_txn)

    def held_by(self, txn: int) -> dict[str, str]:
        return {p: MODE_NAMES[m] for p, m in self._by_txn.get(txn, {}).items()}

    def __len__(self) -> int:
        return len(self._held)
