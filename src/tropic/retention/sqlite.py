"""A retention pass on the embedded store: archive, then remove, the final records the policy lets go.

Each batch is archived (one new file, atomically) before its records are removed (one SQLite
transaction). The records go from SQLite to the archive as the JSON text the store holds (see
:mod:`~tropic.store.sqlite_retain`), never decoded. A pass cut anywhere (even by SIGKILL) loses and
duplicates nothing: records whose file was written but which were not removed yet are found in the
archive by the next pass, which then only removes them. Records a fence refers to are never removed; live
transactions have no final record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tropic.retention.policy import Retention
from tropic.store.archive import Archive
from tropic.store.sqlite import SQLiteStore

BATCH = 1000  # records archived to one file and removed in one SQLite transaction


@dataclass(frozen=True, slots=True)
class PassResult:
    removed: int
    archived: int  # written to new archive files (removed minus those an interrupted pass had archived)
    files: int


def retain(
    store: SQLiteStore, archive: Archive, policy: Retention, *, now: float | None = None, batch: int = BATCH
) -> PassResult:
    """Archive and remove every record ``policy`` lets go, oldest first, ``batch`` at a time."""
    at = time.time() if now is None else now
    cut = store.retention_cut(policy.max_count) if policy.max_count is not None else 0
    ended_before = at - policy.max_age_s if policy.max_age_s is not None else None
    removed = archived = files = 0
    listing = archive.files()  # what earlier passes wrote: this pass's own files hold lower ids only
    after = 0
    while True:
        found = store.retention_candidates(cut, ended_before, batch, after)
        if not found.ids:
            break
        after = found.ids[-1]
        done = archive.holds(found.ids, listing)
        new = found.without(done) if done else found
        if new.ids:
            archive.write_lines(new.ids[0], new.ids[-1], new.first_end, new.lines)
            files += 1
            archived += len(new.ids)
        store.remove_txns(found.ids, found.counts)
        removed += len(found.ids)
        if len(found.ids) < batch:
            break
    if removed:
        store.release_free_pages()
    return PassResult(removed, archived, files)
