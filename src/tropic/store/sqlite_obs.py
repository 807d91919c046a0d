"""The embedded store's observations: one table beside the model, indexed by (subject, metric, time) for
a subject's series and by time for retention and fleet-wide windows.

A pass's readings go in one SQLite transaction (one fsync); the table is never read by the controller's
logical thread, so the knowledge base costs the transaction path nothing but the shared write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tropic.store.observations import ObservationRow, check_query, check_rows, check_trim

SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    subject TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, at REAL NOT NULL, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_series ON observations (subject, metric, at);
CREATE INDEX IF NOT EXISTS observations_at ON observations (at);
"""


def prefix_end(prefix: str) -> str:
    """The smallest string above every string starting with ``prefix`` (a range on the index)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def append(conn: sqlite3.Connection, rows: Sequence[ObservationRow]) -> None:
    """Insert ``rows`` in one transaction (the caller holds the store's write lock)."""
    checked = check_rows(rows)
    if not checked:
        return
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT INTO observations VALUES (?, ?, ?, ?, ?)", checked)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def query(
    conn: sqlite3.Connection,
    prefix: str,
    metric: str | None,
    since: float | None,
    until: float | None,
    limit: int,
) -> list[ObservationRow]:
    check_query(limit, since, until)
    where: list[str] = []
    params: list[object] = []
    if prefix:
        where.append("subject >= ? AND subject < ?")
        params += [prefix, prefix_end(prefix)]
    if metric is not None:
        where.append("metric = ?")
        params.append(metric)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if until is not None:
        where.append("at < ?")
        params.append(until)
    sql = "SELECT subject, metric, value, at, source FROM observations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at DESC, rowid DESC LIMIT ?"
    rows = conn.execute(sql, (*params, limit)).fetchall()
    rows.reverse()
    return [(str(s), str(m), float(v), float(a), str(src)) for s, m, v, a, src in rows]


def trim(conn: sqlite3.Connection, older_than: float | None, max_rows: int | None) -> int:
    """Remove by age, then the oldest beyond ``max_rows``, in one transaction (caller holds the lock)."""
    check_trim(older_than, max_rows)
    conn.execute("BEGIN")
    try:
        removed = 0
        if older_than is not None:
            removed += conn.execute("DELETE FROM observations WHERE at < ?", (older_than,)).rowcount
        if max_rows is not None:
            # The max_rows-th newest row's time and rowid: everything older goes (the time index is walked
            # from its newest end, so this costs max_rows index entries, not the table).
            row = conn.execute(
                "SELECT at, rowid FROM observations ORDER BY at DESC, rowid DESC LIMIT 1 OFFSET ?",
                (max_rows,),
            ).fetchone()
            if row is not None:
                removed += conn.execute(
                    "DELETE FROM observations WHERE at < ? OR (at = ? AND rowid <= ?)",
                    (row[0], row[0], row[1]),
                ).rowcount
        conn.execute("COMMIT")
        return removed
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
