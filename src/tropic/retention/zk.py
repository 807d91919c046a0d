"""A retention pass on the ZooKeeper store: archive, then remove, the final records the policy lets go.

Final records live in immutable archive chunks named by the current snapshot (see
:mod:`~tropic.store.zk_snapshot`). A pass reads the chunks, archives (one new file per chunk, atomically)
the records it lets go, then replaces each such chunk by one holding only the records it keeps (none:
the chunk is dropped) from the next snapshot on; the replaced chunks are deleted once that snapshot is
current. So the number and the size of the znodes stay bounded under a constant load.

A pass cut anywhere (even by SIGKILL, or by a lost leadership) loses and duplicates nothing: until a
snapshot without them is current, the records are still in their chunks, and the next pass finds those
already in the archive (:meth:`~tropic.store.archive.Archive.holds`) and only removes them. Records a
fence, an idempotency key or a live transaction refers to are kept, and so is the newest final record
(new ids follow it after a restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tropic.retention.policy import Retention
from tropic.retention.sqlite import PassResult
from tropic.store.archive import Archive, ended
from tropic.store.base import History

if TYPE_CHECKING:
    from tropic.store.zk import ZooKeeperStore


READ_CHUNKS = 8  # archive chunks decoded at a time (a pass holds a few MB of records, not the history)

Summary = list[tuple[int, float]]  # a chunk's records: (id, when it ended)


def retain_zk(
    store: ZooKeeperStore,
    archive: Archive,
    policy: Retention,
    *,
    now: float | None = None,
    known: dict[str, Summary] | None = None,
    archived_hook: Callable[[], None] | None = None,
) -> PassResult:
    """Archive every record ``policy`` lets go, then retire it from the store (see the module docstring).

    ``known``: summaries of chunks read by earlier passes, kept by the caller (chunks are immutable, so
    a pass decodes only the new ones and those it removes records from). ``archived_hook``: called
    between the archive writes and the removal (tests cut a pass there)."""
    view = store.retention_view()
    if view is None:  # the previous pass's removal is not in the current snapshot yet
        return PassResult(0, 0, 0)
    names, pending, pinned = view
    summaries = {} if known is None else known
    for gone_name in set(summaries) - set(names):
        del summaries[gone_name]
    unknown = [n for n in names if n not in summaries]
    for lo in range(0, len(unknown), READ_CHUNKS):
        part = unknown[lo : lo + READ_CHUNKS]
        for name, records in zip(part, store.read_archive_chunks(part), strict=True):
            summaries[name] = [(int(r["id"]), ended(r)) for r in records]
    ids = sorted(i for n in names for i, _ in summaries[n])
    if not ids:
        return PassResult(0, 0, 0)
    pinned = pinned | {ids[-1]}
    cut = 0
    if policy.max_count is not None:
        keep = policy.max_count - pending  # the records not in a chunk yet are the newest
        cut = ids[-keep] if 0 < keep <= len(ids) else (ids[-1] + 1 if keep <= 0 else 0)
    at = time.time() if now is None else now
    ended_before = at - policy.max_age_s if policy.max_age_s is not None else None

    def goes(i: int, end: float) -> bool:
        return i not in pinned and (i < cut or (ended_before is not None and end < ended_before))

    touched = [n for n in names if any(goes(i, e) for i, e in summaries[n])]
    replace: dict[str, list[dict[str, Any]]] = {}
    counts = History()  # of the records removed: the snapshot keeps them, so a restart still counts them
    removed = archived = files = 0
    for lo in range(0, len(touched), READ_CHUNKS):
        part = touched[lo : lo + READ_CHUNKS]
        for name, records in zip(part, store.read_archive_chunks(part), strict=True):
            gone = sorted((r for r in records if goes(int(r["id"]), ended(r))), key=lambda r: int(r["id"]))
            done = archive.holds(int(r["id"]) for r in gone)
            new = [r for r in gone if int(r["id"]) not in done]
            if new:
                archive.write(new)
                files += 1
                archived += len(new)
            replace[name] = [r for r in records if not goes(int(r["id"]), ended(r))]
            removed += len(gone)
            for r in gone:
                counts.last_id = max(counts.last_id, int(r["id"]))
                counts.count(r["state"], int(r.get("deferrals", 0)), r.get("times", {}))
    if not replace:
        return PassResult(0, 0, 0)
    if archived_hook is not None:
        archived_hook()
    store.retire_archive_chunks(replace, counts)
    return PassResult(removed, archived, files)
