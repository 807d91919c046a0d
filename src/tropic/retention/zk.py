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

if TYPE_CHECKING:
    from tropic.store.zk import ZooKeeperStore


def retain_zk(
    store: ZooKeeperStore,
    archive: Archive,
    policy: Retention,
    *,
    now: float | None = None,
    archived_hook: Callable[[], None] | None = None,
) -> PassResult:
    """Archive every record ``policy`` lets go, then retire it from the store (see the module docstring).
    ``archived_hook``: called between the archive writes and the removal (tests cut a pass there)."""
    view = store.retention_view()
    if view is None:  # the previous pass's removal is not in the current snapshot yet
        return PassResult(0, 0, 0)
    names, pending, pinned = view
    chunks = store.read_archive_chunks(names)
    ids = sorted(int(r["id"]) for records in chunks for r in records)
    if not ids:
        return PassResult(0, 0, 0)
    pinned = pinned | {ids[-1]}
    cut = 0
    if policy.max_count is not None:
        keep = policy.max_count - pending  # the records not in a chunk yet are the newest
        cut = ids[-keep] if 0 < keep <= len(ids) else (ids[-1] + 1 if keep <= 0 else 0)
    at = time.time() if now is None else now
    ended_before = at - policy.max_age_s if policy.max_age_s is not None else None

    def goes(r: dict[str, Any]) -> bool:
        i = int(r["id"])
        if i in pinned:
            return False
        return i < cut or (ended_before is not None and ended(r) < ended_before)

    replace: dict[str, list[dict[str, Any]]] = {}
    removed = archived = files = 0
    for name, records in zip(names, chunks, strict=True):
        gone = sorted((r for r in records if goes(r)), key=lambda r: int(r["id"]))
        if not gone:
            continue
        done = archive.holds(int(r["id"]) for r in gone)
        new = [r for r in gone if int(r["id"]) not in done]
        if new:
            archive.write(new)
            files += 1
            archived += len(new)
        replace[name] = [r for r in records if not goes(r)]
        removed += len(gone)
    if not replace:
        return PassResult(0, 0, 0)
    if archived_hook is not None:
        archived_hook()
    store.retire_archive_chunks(replace)
    return PassResult(removed, archived, files)
