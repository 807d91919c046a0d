"""Idempotency keys of the ZooKeeper store: each is written in the same multi as its transaction's first
record, so a retried submission finds its transaction after any crash or failover.

The book is read by API threads and written by the store's logical thread, hence the lock.
"""

from __future__ import annotations

import itertools
import threading

from tropic.store.zk_layout import KEEP_KEYS


class KeyBook:
    """Key id -> (transaction id, request fingerprint): committed keys, and pending ones (bound to a
    transaction whose first record is not committed yet, e.g. while ZooKeeper is away)."""

    def __init__(self) -> None:
        self.committed: dict[str, tuple[int, str]] = {}
        self.pending: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def bind(self, kid: str, txn_id: int, fingerprint: str) -> None:
        with self._lock:
            self.pending[kid] = (txn_id, fingerprint)

    def lookup(self, kid: str) -> tuple[int, str] | None:
        with self._lock:
            return self.committed.get(kid)

    def lookup_pending(self, kid: str) -> tuple[int, str] | None:
        with self._lock:
            return self.pending.get(kid)

    def txns(self) -> set[int]:
        """The transactions committed keys refer to (retention keeps their records)."""
        with self._lock:
            return {t for t, _ in self.committed.values()}

    def restored(self, kid: str, txn_id: int, fingerprint: str) -> None:
        """A key read back from a snapshot or the log."""
        with self._lock:
            self.committed[kid] = (txn_id, fingerprint)

    def stored(self, kid: str, txn_id: int, fingerprint: str) -> None:
        """``kid`` was committed with its transaction; the oldest keys are forgotten beyond
        :data:`~tropic.store.zk_layout.KEEP_KEYS` (snapshots keep the most recent chunks only, too)."""
        with self._lock:
            self.committed[kid] = (txn_id, fingerprint)
            self.pending.pop(kid, None)
            if len(self.committed) > 2 * KEEP_KEYS:
                for old in list(itertools.islice(self.committed, KEEP_KEYS)):
                    del self.committed[old]
