"""The embedded store's idempotency keys: a key is written with its transaction's first record, in the
same SQLite transaction, so a caller resubmitting after a crash (the autopilot resuming a pass, see
:mod:`tropic.autopilot.passes`; an API client retrying, see :mod:`tropic.api.store_keys`) finds the
transaction instead of making a second one.

A key is bound on the submitting thread (:meth:`PendingKeys.bind`) before its transaction is queued; the
logical thread's seal takes the keys of the transactions it seals (:meth:`PendingKeys.take`), and once the
batch is written they leave the pending map (:meth:`PendingKeys.written`). Until then
:meth:`PendingKeys.lookup` answers them. Keys go with their records when retention removes those
(:func:`forget`, in the same SQLite transaction).

A key lives ``ttl`` seconds from when it was bound (wall-clock time, stored with it, so a restarted
server agrees): after that :func:`lookup` no longer finds it, and each write that stores new keys also
deletes expired ones, oldest first, in a bounded pass (:func:`expire`), so a server running for months
keeps about one TTL's worth of keys.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence

DEFAULT_TTL = 24 * 3600.0  # as tropic.api.idempotency.DEFAULT_TTL
EXPIRE_BATCH = 100  # expired keys deleted at least per write that stores keys (more if it stores more)

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    kid TEXT PRIMARY KEY, txn INTEGER NOT NULL, fingerprint TEXT NOT NULL, at REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_txn ON idempotency_keys (txn);
"""
AT_INDEX = "CREATE INDEX IF NOT EXISTS idempotency_keys_at ON idempotency_keys (at)"
INSERT = "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?)"

KeyRow = tuple[str, int, str, float]  # (key id, transaction id, request fingerprint, when it was bound)


def migrate(conn: sqlite3.Connection, now: float) -> None:
    """Give a store written before keys had a time their ``at`` column: its keys live a TTL from ``now``
    (outside any transaction; a no-op on a current store)."""
    cols = {str(r[1]) for r in conn.execute("PRAGMA table_info(idempotency_keys)")}
    if "at" not in cols:
        conn.execute("BEGIN")
        conn.execute("ALTER TABLE idempotency_keys ADD COLUMN at REAL NOT NULL DEFAULT 0")
        conn.execute("UPDATE idempotency_keys SET at = ?", (now,))
        conn.execute("COMMIT")
    conn.execute(AT_INDEX)


class PendingKeys:
    """Keys bound and not yet written (thread-safe), and the keys' lifetime: ``ttl`` seconds of
    ``clock`` (wall-clock) from :meth:`bind`."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._by_txn: dict[int, KeyRow] = {}
        self._by_kid: dict[str, KeyRow] = {}

    def cutoff(self) -> float:
        """Keys bound at or before this time have expired."""
        return self.clock() - self.ttl

    def bind(self, txn_id: int, kid: str, fingerprint: str) -> None:
        row = (kid, txn_id, fingerprint, self.clock())
        with self._lock:
            self._by_txn[txn_id] = row
            self._by_kid[kid] = row

    def take(self, txn_ids: Iterable[int]) -> list[KeyRow]:
        """The keys of the transactions being sealed (each taken once)."""
        with self._lock:
            if not self._by_txn:
                return []
            return [row for t in txn_ids if (row := self._by_txn.pop(t, None)) is not None]

    def written(self, rows: Sequence[KeyRow]) -> None:
        with self._lock:
            for row in rows:
                if self._by_kid.get(row[0]) == row:
                    del self._by_kid[row[0]]

    def lookup(self, kid: str) -> tuple[int, str] | None:
        with self._lock:
            row = self._by_kid.get(kid)
        return None if row is None else (row[1], row[2])


def lookup(conn: sqlite3.Connection, kid: str, cutoff: float) -> tuple[int, str] | None:
    """The committed transaction and fingerprint of key ``kid``, or None (never stored, removed, or bound
    at or before ``cutoff``: expired)."""
    row = conn.execute(
        "SELECT txn, fingerprint FROM idempotency_keys WHERE kid = ? AND at > ?", (kid, cutoff)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def expire(conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
    """Delete up to ``limit`` keys bound at or before ``cutoff``, oldest first (inside the caller's
    transaction; an index range, so a pass costs its own size); how many were deleted."""
    cur = conn.execute(
        "DELETE FROM idempotency_keys WHERE kid IN "
        "(SELECT kid FROM idempotency_keys WHERE at <= ? ORDER BY at LIMIT ?)",
        (cutoff, limit),
    )
    return cur.rowcount


def count(conn: sqlite3.Connection) -> int:
    """Keys stored (expired ones not deleted yet included)."""
    return int(conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()[0])


def forget(conn: sqlite3.Connection, ids_json: str) -> None:
    """Remove the keys of the transactions in ``ids_json`` (a JSON list; inside the caller's transaction)."""
    conn.execute("DELETE FROM idempotency_keys WHERE txn IN (SELECT value FROM json_each(?))", (ids_json,))
