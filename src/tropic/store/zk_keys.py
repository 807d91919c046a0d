"""Idempotency keys of the ZooKeeper store: each is written in the same multi as its transaction's first
record, so a retried submission finds its transaction after any crash or failover.

A key lives ``ttl`` seconds from when it was bound (wall-clock time, written with it, so every replica
agrees): after that :meth:`KeyBook.lookup` no longer finds it and the key is new again. Expired keys leave
memory in bounded passes as new ones are stored, and leave ZooKeeper when a snapshot drops the key chunks
whose newest key has expired (:mod:`~tropic.store.zk_snapshot`).

The book is read by API threads and written by the store's logical thread, hence the lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from tropic.store.zk_layout import KEEP_KEYS

DEFAULT_TTL = 24 * 3600.0  # as tropic.api.idempotency.DEFAULT_TTL
EXPIRE_BATCH = 100  # expired keys dropped from memory at most per key stored


class KeyBook:
    """Key id -> (transaction id, request fingerprint): committed keys, and pending ones (bound to a
    transaction whose first record is not committed yet, e.g. while ZooKeeper is away). ``born``: when
    each key was bound (``clock``, wall-clock seconds), in the order the keys were stored."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self.committed: dict[str, tuple[int, str]] = {}
        self.pending: dict[str, tuple[int, str]] = {}
        self.born: dict[str, float] = {}  # committed keys
        self._bound: dict[str, float] = {}  # pending keys
        self._lock = threading.Lock()

    def bind(self, kid: str, txn_id: int, fingerprint: str) -> float:
        """A key bound to a new transaction: when (to be written with it)."""
        with self._lock:
            self.pending[kid] = (txn_id, fingerprint)
            at = self.clock()
            self._bound[kid] = at
            return at

    def bound_at(self, kid: str) -> float | None:
        """When pending key ``kid`` was bound."""
        with self._lock:
            return self._bound.get(kid)

    def expired(self, at: float) -> bool:
        return self.clock() - at >= self.ttl

    def lookup(self, kid: str) -> tuple[int, str] | None:
        with self._lock:
            seen = self.committed.get(kid)
            if seen is not None and self.expired(self.born.get(kid, 0.0)):
                return None
            return seen

    def lookup_pending(self, kid: str) -> tuple[int, str] | None:
        with self._lock:
            return self.pending.get(kid)

    def txns(self) -> set[int]:
        """The transactions committed keys refer to (retention keeps their records)."""
        with self._lock:
            return {t for t, _ in self.committed.values()}

    def restored(self, kid: str, txn_id: int, fingerprint: str, at: float | None = None) -> None:
        """A key read back from a snapshot or the log (``at``: when it was bound; None for keys written
        before keys had a time: they live a TTL from now). An expired one is dropped by the next pass (the
        TTL may be set after the restore)."""
        at = self.clock() if at is None else at
        with self._lock:
            self.committed.pop(kid, None)
            self.committed[kid] = (txn_id, fingerprint)
            self.born[kid] = at

    def stored(self, kid: str, txn_id: int, fingerprint: str) -> None:
        """``kid`` was committed with its transaction; expired keys are dropped (a bounded pass), and the
        oldest beyond :data:`~tropic.store.zk_layout.KEEP_KEYS` (snapshots keep the most recent chunks
        only, too)."""
        with self._lock:
            at = self._bound.pop(kid, None)
            self.born.pop(kid, None)
            self.committed.pop(kid, None)  # stored again after its TTL: it moves to the end
            self.committed[kid] = (txn_id, fingerprint)
            self.born[kid] = self.clock() if at is None else at
            self.pending.pop(kid, None)
            self._expire(EXPIRE_BATCH)
            if len(self.committed) > 2 * KEEP_KEYS:
                for old in list(itertools.islice(self.committed, KEEP_KEYS)):
                    del self.committed[old]
                    self.born.pop(old, None)

    def expire(self, limit: int = EXPIRE_BATCH) -> int:
        """Drop up to ``limit`` expired keys from memory, the oldest first; how many were dropped."""
        with self._lock:
            return self._expire(limit)

    def _expire(self, limit: int) -> int:
        dropped = 0
        for kid in list(itertools.islice(self.committed, limit)):
            if not self.expired(self.born.get(kid, 0.0)):
                break
            del self.committed[kid]
            self.born.pop(kid, None)
            dropped += 1
        return dropped
