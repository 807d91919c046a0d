"""The sim's count of effective applications of each step (``SimDriver.applied``, the ``sim_applied``
table of its file), kept bounded: it holds the steps of the newest :data:`KEEP_TXNS` transactions (a
crashed transaction's redo lands there and is counted against its first application), and every step
applied twice (the non-idempotent redo ``tropic check`` reports; none in a correct run). Older entries
are released every :data:`RELEASE_EVERY` applications, so the file and the dictionary stop growing under
a constant load."""

from __future__ import annotations

import sqlite3

KEEP_TXNS = 10_000  # transactions (by id, below the newest applied) whose steps stay counted
RELEASE_EVERY = 1_000  # applications between two releases

Applied = dict[tuple[int, int, bool], int]  # (txn, step index, undo) -> effective applications


def release(applied: Applied, db: sqlite3.Connection | None, keep: int) -> Applied:
    """Forget the steps applied once of transactions more than ``keep`` ids older than the newest one
    applied (in ``db`` too, inside the caller's write transaction); returns what stays."""
    newest = max((k[0] for k in applied), default=0)
    if db is not None:
        newest = max(newest, int(db.execute("SELECT COALESCE(MAX(txn), 0) FROM sim_applied").fetchone()[0]))
        db.execute("DELETE FROM sim_applied WHERE txn < ? AND n = 1", (newest - keep,))
    return {k: n for k, n in applied.items() if k[0] >= newest - keep or n > 1}
