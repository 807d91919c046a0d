"""The embedded store's idempotency keys: a key is written with its transaction's first record, in the
same SQLite transaction, so a caller resubmitting after a crash (the autopilot resuming a pass, see
:mod:`tropic.autopilot.passes`) finds the transaction instead of making a second one.

A key is bound on the submitting thread (:meth:`PendingKeys.bind`) before its transaction is queued; the
logical thread's seal takes the keys of the transactions it seals (:meth:`PendingKeys.take`), and once the
batch is written they leave the pending map (:meth:`PendingKeys.written`). Until then
:meth:`PendingKeys.lookup` answers them. Keys go with their records when retention removes those
(:func:`forget`, in the same SQLite transaction).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    kid TEXT PRIMARY KEY, txn INTEGER NOT NULL, fingerprint TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_txn ON idempotency_keys (txn);
"""
INSERT = "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?)"

KeyRow = tuple[str, int, str]  # (key id, transaction id, request fingerprint)


class PendingKeys:
    """Keys bound and not yet written (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_txn: dict[int, KeyRow] = {}
        self._by_kid: dict[str, KeyRow] = {}

    def bind(self, txn_id: int, kid: str, fingerprint: str) -> None:
        row = (kid, txn_id, fingerprint)
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


def lookup(conn: sqlite3.Connection, kid: str) -> tuple[int, str] | None:
    """The committed transaction and fingerprint of key ``kid``, or None."""
    row = conn.execute("SELECT txn, fingerprint FROM idempotency_keys WHERE kid = ?", (kid,)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def forget(conn: sqlite3.Connection, ids_json: str) -> None:
    """Remove the keys of the transactions in ``ids_json`` (a JSON list; inside the caller's transaction)."""
    conn.execute("DELETE FROM idempotency_keys WHERE txn IN (SELECT value FROM json_each(?))", (ids_json,))
