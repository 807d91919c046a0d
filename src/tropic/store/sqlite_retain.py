"""The embedded store's side of retention (:mod:`tropic.retention.sqlite`): which final records a policy
lets go, read as ready-made archive lines, and their removal.

SQLite does the work: a batch is one range of the primary key, each record comes out already joined to
its action log as the JSON line the archive stores, with the few fields the pass needs (its state, how
it ended, when) extracted beside it. No record is decoded into Python objects and encoded again, and
SQLite lets other threads run while it reads, so a pass in the retention thread costs the controller
little.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import orjson

from tropic.store import sqlite_keys
from tropic.store.base import History

FINAL_STATES = "'COMMITTED', 'ABORTED', 'FAILED'"

# When a final record ended: its final state's time (the latest of its times).
ENDED = (
    "MAX(COALESCE(json_extract(record, '$.times.COMMITTED'), 0),"
    " COALESCE(json_extract(record, '$.times.ABORTED'), 0),"
    " COALESCE(json_extract(record, '$.times.FAILED'), 0))"
)
# The archive's line: the record with its action log (stored apart) as "actions". The record is a JSON
# object written without "actions" (Transaction.to_dict(actions=False)), so its closing brace makes way.
LINE = (
    "CAST(substr(record, 1, length(record) - 1) || ',\"actions\":' || COALESCE(actions, '[]') || '}' AS BLOB)"
)
COLUMNS = (
    f"id, {LINE}, state, COALESCE(json_extract(record, '$.deferrals'), 0),"
    " json_extract(record, '$.times.ROLLING_BACK') IS NOT NULL,"
    f" json_extract(record, '$.times.KILLED') IS NOT NULL, {ENDED}"
)


@dataclass(slots=True)
class Candidates:
    """One batch of records a policy lets go, oldest first: their ids, their archive lines, when the
    oldest ended (the archive file's day) and their counts (kept once they are removed)."""

    ids: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    first_end: float = 0.0
    counts: History = field(default_factory=History)

    def without(self, done: set[int]) -> Candidates:
        """The same batch less the records ``done`` (already archived by an interrupted pass); the
        counts stay those of the whole batch (all of it is removed)."""
        keep = [k for k, i in enumerate(self.ids) if i not in done]
        return Candidates(
            [self.ids[k] for k in keep], [self.lines[k] for k in keep], self.first_end, self.counts
        )


def cut(conn: sqlite3.Connection, max_count: int) -> int:
    """The id of the ``max_count``-th newest final record (a count policy keeps it and the newer ones),
    0 when there are fewer."""
    row = conn.execute(
        f"SELECT id FROM txns WHERE state IN ({FINAL_STATES}) ORDER BY id DESC LIMIT 1 OFFSET ?",
        (max_count - 1,),
    ).fetchone()
    return int(row[0]) if row else 0


def candidates(
    conn: sqlite3.Connection, cut: int, ended_before: float | None, limit: int, after: int
) -> Candidates:
    """Up to ``limit`` final records with ids above ``after``, oldest first, below ``cut`` or (with
    ``ended_before``) ended before that time; never one a fence refers to."""
    where = f"state IN ({FINAL_STATES}) AND id > ? AND id NOT IN (SELECT txn FROM fences)"
    if ended_before is None:
        sql = f"SELECT {COLUMNS} FROM txns WHERE {where} AND id < ? ORDER BY id LIMIT ?"
        params: tuple[object, ...] = (after, cut, limit)
    else:
        sql = f"SELECT {COLUMNS} FROM txns WHERE {where} AND (id < ? OR {ENDED} < ?) ORDER BY id LIMIT ?"
        params = (after, cut, ended_before, limit)
    out = Candidates()
    ends = []
    for txn_id, line, state, deferrals, rolled, killed, end in conn.execute(sql, params):
        out.ids.append(txn_id)
        out.lines.append(line)
        ends.append(end)
        out.counts.count(state, int(deferrals), _TIMES[bool(rolled), bool(killed)])
    out.counts.last_id = out.ids[-1] if out.ids else 0
    out.first_end = float(min(ends, default=0.0))
    return out


_TIMES = {
    (False, False): (),
    (True, False): ("ROLLING_BACK",),
    (False, True): ("KILLED",),
    (True, True): ("ROLLING_BACK", "KILLED"),
}


def remove(conn: sqlite3.Connection, ids: list[int], counts: History) -> None:
    """Remove the records ``ids`` (final, archived by the caller) and add ``counts`` to those of the
    removed records kept in ``meta``, in one SQLite transaction (the caller holds the write lock)."""
    conn.execute("BEGIN")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='retired'").fetchone()
        retired = history_of(row[0] if row else None)
        retired.add(counts)
        conn.execute(
            f"DELETE FROM txns WHERE id IN (SELECT value FROM json_each(?)) AND state IN ({FINAL_STATES})",
            (orjson.dumps(ids).decode(),),
        )
        sqlite_keys.forget(conn, orjson.dumps(ids).decode())  # their idempotency keys go with them
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('retired', ?)",
            (orjson.dumps(retired.to_dict()).decode(),),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def history_of(text: str | None) -> History:
    return History(**orjson.loads(text)) if text else History()
