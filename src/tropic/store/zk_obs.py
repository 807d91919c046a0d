"""The ZooKeeper store's observations: chunked znodes, one parent per time bucket.

Layout under the chroot::

    /obs/<bucket>/c-<rows>-<seq>    a chunk: zlib-compressed JSON list of rows taken in that bucket

``<bucket>`` is the bucket's start (Unix seconds, zero-padded so that names sort by time), ``<rows>`` how
many rows the chunk holds (retention counts without reading), ``<seq>`` ZooKeeper's sequence number (the
order chunks were written). A pass's rows go in one multi (a few when they exceed ZooKeeper's request
limit) that also checks the leader's election node, so a deposed leader writes nothing. Any store
instance on the ensemble reads them: a new leader picks the series up where the old one stopped.

Retention removes whole chunks: by age, a bucket once all of it is older than the cut (so up to one bucket
width of older rows may stay); by size, the oldest chunks until at most ``max_rows`` rows are left.
A write whose answer was lost is sent again, so a row may (rarely) be stored twice; the predictor's
percentile barely moves for a duplicate sample.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from tropic.errors import CorruptStore, StoreError
from tropic.store.observations import (
    ObservationRow,
    check_query,
    check_rows,
    check_trim,
    matches,
    newest,
)
from tropic.store.zk_layout import MAX_BLOB, MAX_ENTRY
from tropic.store.zk_writer import LeadershipLost, LogWriter

OBS = "/obs"
BUCKET_S = 600  # seconds of readings under one parent znode
CHUNK_ROWS = 2000  # rows per chunk znode (about 30 KB compressed)
OPS_PER_MULTI = 500  # deletions per multi


def _rolled_back(e: object) -> bool:
    return type(e).__name__ == "RolledBackError"


def _rows_of(chunk: str) -> int:
    try:
        return int(chunk.split("-")[1])
    except (IndexError, ValueError):
        return 0


def _seq_of(chunk: str) -> str:
    return chunk.rsplit("-", 1)[-1]


class ZkObservations:
    """Observation rows of one ZooKeeper store (see the module docstring). ``get_many`` reads many znodes
    with requests in flight (the store's)."""

    def __init__(
        self,
        client: KazooClient,
        writer: LogWriter,
        get_many: Callable[[list[str]], list[bytes]],
        *,
        bucket_s: int = BUCKET_S,
    ) -> None:
        self.client = client
        self.writer = writer
        self.get_many = get_many
        self.bucket_s = bucket_s
        self._buckets: set[str] = set()  # bucket znodes known to exist

    # --- helpers -----------------------------------------------------------------------------------
    def _bucket(self, at: float) -> str:
        return f"{int(at // self.bucket_s) * self.bucket_s:012d}"

    def _children(self, path: str) -> list[str]:
        try:
            return sorted(self.writer.call(partial(self.client.get_children_async, path), f"list {path}"))
        except NoNodeError:
            return []

    def _check_writer(self) -> None:
        w = self.writer
        if w.dead is not None:
            raise w.dead
        if w.abdicated:
            raise LeadershipLost(f"{w.where}: this controller stepped down; it writes no observations")
        if w.read_only or w.head is None:
            raise StoreError(f"{w.where}: not the store's writer (take it over first); observations refused")

    def _multi(self, fill: Callable[[Any], None], what: str) -> None:
        """One multi (checking the election node) filled by ``fill``; a failure says why."""
        w = self.writer

        def start() -> Any:
            tx = self.client.transaction()
            if w.lock_node is not None:
                tx.check(w.lock_node, 0)
            fill(tx)
            return tx.commit_async()

        results = w.call(start, what)
        failure = next((r for r in results if isinstance(r, Exception) and not _rolled_back(r)), None)
        if failure is None:
            return
        if w.lock_node is not None and isinstance(failure, NoNodeError):
            exists = w.call(partial(self.client.exists_async, w.lock_node), f"read {w.lock_node}")
            if exists is None:
                raise w.lost(f"its election node {w.lock_node} is gone")
        raise _Failed(failure)

    # --- the contract ------------------------------------------------------------------------------
    def append(self, rows: Sequence[ObservationRow]) -> None:
        checked = check_rows(rows)
        if not checked:
            return
        self._check_writer()
        by_bucket: dict[str, list[ObservationRow]] = {}
        for r in checked:
            by_bucket.setdefault(self._bucket(r[3]), []).append(r)
        chunks: list[tuple[str, bytes]] = []
        for bucket, rs in sorted(by_bucket.items()):
            for lo in range(0, len(rs), CHUNK_ROWS):
                chunks += _encode(f"{OBS}/{bucket}", rs[lo : lo + CHUNK_ROWS])
        groups: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for path, data in chunks:
            if groups[-1] and size + len(data) > MAX_ENTRY:
                groups.append([])
                size = 0
            groups[-1].append((path, data))
            size += len(data)
        for group in groups:
            for attempt in (1, 2):
                self._ensure({p.rsplit("/", 1)[0] for p, _ in group})

                def fill(tx: Any, group: list[tuple[str, bytes]] = group) -> None:
                    for path, data in group:
                        tx.create(path, data, sequence=True)

                try:
                    self._multi(fill, "write observations")
                    break
                except _Failed as f:
                    if attempt == 2 or not isinstance(f.error, NoNodeError):
                        raise StoreError(
                            f"{self.writer.where}: cannot write observations: {type(f.error).__name__}"
                        ) from None
                    self._buckets.clear()  # a bucket was removed meanwhile (retention): create it again

    def _ensure(self, buckets: set[str]) -> None:
        for path in sorted(buckets - self._buckets):
            with contextlib.suppress(NodeExistsError):
                self.writer.call(partial(self.client.ensure_path_async, path), f"create {path}")
            self._buckets.add(path)

    def query(
        self, prefix: str, metric: str | None, since: float | None, until: float | None, limit: int
    ) -> list[ObservationRow]:
        check_query(limit, since, until)
        found: list[ObservationRow] = []
        for bucket in reversed(self._children(OBS)):
            start = int(bucket)
            if until is not None and start >= until:
                continue
            if since is not None and start + self.bucket_s <= since:
                break
            path = f"{OBS}/{bucket}"
            names = [f"{path}/{c}" for c in self._children(path)]
            for name, data in zip(names, self.get_many(names), strict=True):
                found += [r for r in _decode(name, data) if matches(r, prefix, metric, since, until)]
            if len(found) >= limit:
                break  # older buckets hold only older rows
        return newest(found, limit)

    def trim(self, older_than: float | None, max_rows: int | None) -> int:
        check_trim(older_than, max_rows)
        self._check_writer()
        doomed: list[str] = []  # chunk paths, then their emptied buckets
        emptied: list[str] = []
        removed = 0
        kept = 0
        for bucket in reversed(self._children(OBS)):
            path = f"{OBS}/{bucket}"
            chunks = sorted(self._children(path), key=_seq_of, reverse=True)
            old = older_than is not None and int(bucket) + self.bucket_s <= older_than
            gone = 0
            for c in chunks:
                n = _rows_of(c)
                if old or (max_rows is not None and kept + n > max_rows):
                    doomed.append(f"{path}/{c}")
                    removed += n
                    gone += 1
                else:
                    kept += n
            if gone == len(chunks):
                emptied.append(path)
        ops = doomed + emptied
        for lo in range(0, len(ops), OPS_PER_MULTI):

            def fill(tx: Any, part: list[str] = ops[lo : lo + OPS_PER_MULTI]) -> None:
                for p in part:
                    tx.delete(p)

            try:
                self._multi(fill, "remove observations")
            except _Failed as f:
                raise StoreError(
                    f"{self.writer.where}: cannot remove observations: {type(f.error).__name__}"
                ) from None
        self._buckets.difference_update(emptied)
        return removed


class _Failed(Exception):
    def __init__(self, error: object) -> None:
        super().__init__(str(error))
        self.error = error


def _encode(parent: str, rows: list[ObservationRow]) -> list[tuple[str, bytes]]:
    data = zlib.compress(orjson.dumps(rows))
    if len(data) > MAX_BLOB and len(rows) > 1:
        half = len(rows) // 2
        return _encode(parent, rows[:half]) + _encode(parent, rows[half:])
    return [(f"{parent}/c-{len(rows)}-", data)]


def _decode(path: str, data: bytes) -> list[ObservationRow]:
    try:
        rows = orjson.loads(zlib.decompress(data))
        return [(str(s), str(m), float(v), float(a), str(src)) for s, m, v, a, src in rows]
    except (zlib.error, orjson.JSONDecodeError, TypeError, ValueError):
        raise CorruptStore(f"observation chunk {path} is damaged (not a compressed list of rows)") from None
