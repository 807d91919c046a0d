"""The sequenced request log of a replicated job, in ZooKeeper (layout in :mod:`tropic.ha.contract`).

A request is appended as a persistent sequential node ``log/r-<seq>``: ZooKeeper assigns the sequence
number from the parent's change counter at commit, so Zab's total order of writes is the log order and a
reader that sees index ``i`` has also seen every index below it. Indices grow but are not contiguous
(deleting a child also advances the counter), so readers list the children and sort them.

The ``log`` node's child counter (its ``cversion``, bumped by every child created or deleted) orders the
log's states: a listing read with a counter at least ``c`` (:meth:`RequestLog.listing`) holds every
entry the log held when its counter was ``c``, bar those deleted since. :meth:`RequestLog.synced_counter`
reads the counter after a ZooKeeper ``sync()``: that is how a replica learns the log's tail as of a
linearizable read without writing. (The counter is not an index bound: ZooKeeper 3.8 numbers a
sequential child from a counter that deletions do not advance, so indices may stay below it.)

Snapshots (``snapshots/<replica>``) are persistent: they outlive a replica so that its replacement, or any
replica, can restore the newest one. A snapshot over ZooKeeper's 1 MB node limit is written as chunks
``snapshots/<replica>/<gen>-<i>`` first, then a small header naming them.

Truncation removes the entries below the lowest snapshot of every *live* replica (``replicas/``
ephemeral nodes) and records the lowest index kept in ``truncated``. A replica registers (bumping the
``replicas`` node's version) before it chooses the snapshot it restores, and the marker is moved in one
ZooKeeper transaction that checks that version, so a replica starting meanwhile can never miss entries:
either the truncation saw it (and its missing snapshot stopped it) or the replica sees the new marker.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent

from tropic.errors import TropicError
from tropic.ha.codec import WireError, decode_entry, decode_info, decode_snapshot, dumps, encode
from tropic.ha.contract import LOG_PREFIX, LogEntry, ReplicaInfo, Snapshot, ha_root
from tropic.store.zkclient import bounded_call

__all__ = ["CHUNK_BYTES", "TRANSIENT", "LogTruncated", "RequestLog", "entry_index"]

# ZooKeeper refuses a node (or a request) over jute.maxbuffer, 1 MB by default; stay well below.
CHUNK_BYTES = 512 * 1024
# What kazoo raises while the ensemble cannot answer (a lost connection or session); worth a retry.
TRANSIENT: tuple[type[Exception], ...] = (
    ConnectionLoss,
    ConnectionClosedError,
    OperationTimeoutError,
    SessionExpiredError,
)


class LogTruncated(TropicError):
    """An entry a reader needed was removed by truncation: restore a snapshot at or above ``marker - 1``."""

    code = "ha_log_truncated"

    def __init__(self, message: str, *, marker: int) -> None:
        super().__init__(message)
        self.marker = marker


def entry_index(name: str) -> int:
    """The log index of node ``r-0000000042`` (42)."""
    return int(name[len(LOG_PREFIX) :])


Watch = Callable[[WatchedEvent], None]


class RequestLog:
    """One job's log, snapshots and live replicas, through a started kazoo client (chrooted at the
    deployment). Every call fails within ``timeout`` seconds with
    :class:`~tropic.store.zkclient.ZooKeeperUnavailable` when the ensemble cannot answer."""

    def __init__(self, zk: KazooClient, job: str, *, timeout: float = 10.0) -> None:
        if not job or "/" in job:
            raise TropicError(f"invalid job name {job!r}: it must be non-empty and contain no '/'")
        self.zk = zk
        self.job = job
        self.timeout = timeout
        self.root = ha_root(job)
        self.log_path = f"{self.root}/log"
        self.replicas_path = f"{self.root}/replicas"
        self.snapshots_path = f"{self.root}/snapshots"
        self.truncated_path = f"{self.root}/truncated"

    def _call(self, start: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        return bounded_call(
            self.zk, start, what=f"{what} of HA job {self.job}", timeout=timeout or self.timeout
        )

    def ensure(self) -> None:
        """Create the job's nodes when missing (idempotent)."""
        for path in (self.log_path, self.replicas_path, self.snapshots_path):
            self._call(partial(self.zk.ensure_path_async, path), f"create {path}")
        with contextlib.suppress(NodeExistsError):
            self._call(lambda: self.zk.create_async(self.truncated_path, b"0"), "create the marker")

    # --- the log -----------------------------------------------------------------------------------
    def append(self, entry: LogEntry, *, timeout: float | None = None) -> int:
        """Append ``entry``; return its log index. A retry after a lost connection may append it twice:
        the replicas apply a ``(client, seq)`` once."""
        path = self._call(
            lambda: self.zk.create_async(f"{self.log_path}/{LOG_PREFIX}", encode(entry), sequence=True),
            "append to the log",
            timeout,
        )
        return entry_index(str(path).rsplit("/", 1)[1])

    def listing(self, watch: Watch | None = None) -> tuple[list[int], int]:
        """The indices in the log, in order, and the log's child counter (``cversion``) of the same read
        (see the module docstring); ``watch`` fires once on the next change."""
        names, stat = self._call(
            lambda: self.zk.get_children_async(self.log_path, watch=watch, include_data=True), "list the log"
        )
        return sorted(entry_index(n) for n in names if n.startswith(LOG_PREFIX)), int(stat.cversion)

    def synced_counter(self, *, timeout: float | None = None) -> int:
        """``sync()`` the log node with the ZooKeeper leader, then read its child counter: a listing with
        a counter at least the answer holds every entry appended (acknowledged to anyone) before this call
        began, bar those deleted since.

        The read is sent right behind the sync on the same session; ZooKeeper executes a session's
        requests in the order sent and holds a read behind that session's pending sync, so it sees at least
        the state the sync brought the server to."""

        def start() -> IAsyncResult:
            result = self.zk.handler.async_result()
            synced = self.zk.sync_async(self.log_path)
            stat = self.zk.exists_async(self.log_path)

            def after_stat(done: IAsyncResult) -> None:
                try:
                    value = done.get()
                    result.set(0 if value is None else int(value.cversion))
                except Exception as exc:
                    result.set_exception(exc)

            def after_sync(done: IAsyncResult) -> None:
                try:
                    done.get()
                except Exception as exc:
                    result.set_exception(exc)
                    return
                stat.rawlink(after_stat)

            synced.rawlink(after_sync)
            return result

        return int(self._call(start, "sync with the log", timeout))

    def indices(self, watch: Watch | None = None) -> list[int]:
        """The indices in the log, in order; ``watch`` fires once on the next change."""
        names = self._call(lambda: self.zk.get_children_async(self.log_path, watch=watch), "list the log")
        return sorted(entry_index(n) for n in names if n.startswith(LOG_PREFIX))

    def read(self, indices: Sequence[int]) -> list[tuple[int, LogEntry]]:
        """The entries at ``indices`` (fetched in parallel), in the order given. Raises
        :class:`LogTruncated` when one was removed meanwhile."""
        pending = [(i, self.zk.get_async(f"{self.log_path}/{LOG_PREFIX}{i:010d}")) for i in indices]
        out: list[tuple[int, LogEntry]] = []
        for index, result in pending:
            try:
                data, _ = result.get(timeout=self.timeout)
            except NoNodeError:
                raise self._truncated_at(index) from None
            except (*TRANSIENT, self.zk.handler.timeout_exception):
                # the slow path retries through bounded_call
                path = f"{self.log_path}/{LOG_PREFIX}{index:010d}"
                try:
                    data, _ = self._call(partial(self.zk.get_async, path), "read the log")
                except NoNodeError:
                    raise self._truncated_at(index) from None
            try:
                out.append((index, decode_entry(data)))
            except WireError as exc:
                # never written by a wrapper; kept in the log, applied as a request the program refuses
                out.append((index, LogEntry(client="", seq=0, op={"__malformed__": str(exc)})))
        return out

    def _truncated_at(self, index: int) -> LogTruncated:
        marker = self.truncated()
        return LogTruncated(
            f"log entry {index} of HA job {self.job} was truncated (lowest kept: {marker})", marker=marker
        )

    def entries(self, after: int = -1) -> list[tuple[int, LogEntry]]:
        """Every entry above index ``after``, in log order."""
        return self.read([i for i in self.indices() if i > after])

    def size(self) -> int:
        """How many entries the log holds now."""
        stat = self._call(lambda: self.zk.exists_async(self.log_path), "count the log")
        return 0 if stat is None else int(stat.numChildren)

    def truncated(self) -> int:
        """The lowest index still kept (0: never truncated)."""
        try:
            data, _ = self._call(lambda: self.zk.get_async(self.truncated_path), "read the truncation marker")
        except NoNodeError:
            return 0
        return int(json.loads(data)) if data else 0

    def truncated_async(self) -> IAsyncResult:
        """:meth:`truncated`, started: ``.get(timeout)`` gives the marker (0 when never truncated)."""
        result = self.zk.handler.async_result()

        def done(started: IAsyncResult) -> None:
            try:
                data, _ = started.get()
                result.set(int(json.loads(data)) if data else 0)
            except NoNodeError:
                result.set(0)
            except Exception as exc:
                result.set_exception(exc)

        self.zk.get_async(self.truncated_path).rawlink(done)
        return result

    # --- replicas ----------------------------------------------------------------------------------
    def register(self, info: ReplicaInfo) -> None:
        """Create ``replicas/<replica>`` (ephemeral) and bump the ``replicas`` node's version in one
        transaction (see the module docstring). A node left by a dead incarnation of the same replica
        (its session not yet expired) is replaced."""
        path = f"{self.replicas_path}/{info.replica}"
        for _ in range(3):
            tx = self.zk.transaction()
            tx.create(path, encode(info), ephemeral=True)
            tx.set_data(self.replicas_path, b"")
            results = self._call(tx.commit_async, f"register replica {info.replica}")
            if not any(isinstance(r, NodeExistsError) for r in results):
                errors = [r for r in results if isinstance(r, Exception)]
                if errors:
                    raise TropicError(f"cannot register replica {info.replica}: {errors[0]!r}")
                return
            with contextlib.suppress(NoNodeError):
                self._call(lambda: self.zk.delete_async(path), f"remove the stale node of {info.replica}")
        raise TropicError(f"cannot register replica {info.replica}: its node keeps reappearing")

    def update(self, info: ReplicaInfo) -> None:
        """Rewrite this session's replica node (fire and forget: the next update supersedes it)."""
        self.zk.set_async(f"{self.replicas_path}/{info.replica}", encode(info))

    def unregister(self, replica: str) -> None:
        with contextlib.suppress(NoNodeError):
            self._call(lambda: self.zk.delete_async(f"{self.replicas_path}/{replica}"), "unregister", 3.0)

    def live(self, watch: Watch | None = None) -> dict[str, ReplicaInfo]:
        """The live replicas (their ephemeral nodes), by name; ``watch`` fires on the next join or leave."""
        names = self._call(
            lambda: self.zk.get_children_async(self.replicas_path, watch=watch), "list the replicas"
        )
        pending = [(n, self.zk.get_async(f"{self.replicas_path}/{n}")) for n in names]
        out: dict[str, ReplicaInfo] = {}
        for name, result in pending:
            try:
                data, _ = result.get(timeout=self.timeout)
                out[name] = decode_info(data)
            except (NoNodeError, WireError, *TRANSIENT, self.zk.handler.timeout_exception):
                continue  # gone meanwhile, not a replica's node, or unreadable now: as if not there
        return out

    # --- snapshots ---------------------------------------------------------------------------------
    def write_snapshot(self, replica: str, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the newest of ``replica`` (chunked when large)."""
        path = f"{self.snapshots_path}/{replica}"
        data = encode(snapshot)
        if len(data) <= CHUNK_BYTES:
            self._set_or_create(path, data)
            self._drop_chunks(path, keep="")
            return
        self._set_or_create(path, None)  # the parent of the chunks
        gen = f"g{snapshot.applied:010d}"
        chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
        for n, chunk in enumerate(chunks):
            self._set_or_create(f"{path}/{gen}-{n:05d}", chunk)
        self._set_or_create(path, dumps({"applied": snapshot.applied, "gen": gen, "chunks": len(chunks)}))
        self._drop_chunks(path, keep=gen)

    def _set_or_create(self, path: str, data: bytes | None) -> None:
        try:
            if data is None:
                self._call(lambda: self.zk.create_async(path, b""), f"create {path}")
            else:
                self._call(lambda: self.zk.set_async(path, data), f"write {path}")
        except NoNodeError:
            self._call(lambda: self.zk.create_async(path, data or b""), f"create {path}")
        except NodeExistsError:
            pass

    def _drop_chunks(self, path: str, *, keep: str) -> None:
        for name in self._call(lambda: self.zk.get_children_async(path), f"list {path}"):
            if not keep or not name.startswith(keep + "-"):
                with contextlib.suppress(NoNodeError):
                    self._call(partial(self.zk.delete_async, f"{path}/{name}"), f"delete {path}/{name}")

    def _header(self, replica: str) -> dict[str, Any] | None:
        try:
            data, _ = self._call(
                lambda: self.zk.get_async(f"{self.snapshots_path}/{replica}"),
                f"read the snapshot of {replica}",
            )
        except NoNodeError:
            return None
        if not data:
            return None
        value = json.loads(data)
        return value if isinstance(value, dict) and isinstance(value.get("applied"), int) else None

    def snapshot_applied(self, replica: str) -> int | None:
        """The index the newest snapshot of ``replica`` includes (None: it has none)."""
        header = self._header(replica)
        return None if header is None else int(header["applied"])

    def read_snapshot(self, replica: str) -> Snapshot | None:
        """The newest snapshot of ``replica`` (None: it has none)."""
        for _ in range(5):  # a chunked snapshot may be replaced while read: read it again
            header = self._header(replica)
            if header is None:
                return None
            if "chunks" not in header:
                return decode_snapshot(dumps(header))
            base = f"{self.snapshots_path}/{replica}/{header['gen']}"
            try:
                parts = [
                    self._call(partial(self.zk.get_async, f"{base}-{n:05d}"), "read a snapshot chunk")[0]
                    for n in range(int(header["chunks"]))
                ]
            except NoNodeError:
                continue
            return decode_snapshot(b"".join(parts))
        raise TropicError(f"the snapshot of replica {replica} of HA job {self.job} keeps changing while read")

    def snapshots(self) -> dict[str, int]:
        """Every replica's newest snapshot index, by replica (live or not)."""
        names = self._call(lambda: self.zk.get_children_async(self.snapshots_path), "list the snapshots")
        out = {}
        for name in names:
            applied = self.snapshot_applied(name)
            if applied is not None:
                out[name] = applied
        return out

    def newest_usable_snapshot(self) -> Snapshot | None:
        """The newest snapshot from which the log still holds every later entry (None: replay the log
        from the start, which is possible only while it was never truncated)."""
        marker = self.truncated()
        for replica, applied in sorted(self.snapshots().items(), key=lambda kv: -kv[1]):
            if applied < marker - 1:
                break
            snapshot = self.read_snapshot(replica)
            if snapshot is not None and snapshot.applied >= marker - 1:
                return snapshot
        return None

    # --- truncation --------------------------------------------------------------------------------
    def truncate(self) -> int:
        """Remove the entries below the lowest snapshot that every live replica has; return the marker
        (the lowest index kept). Safe to run from every replica at once."""
        names, stat = self._call(
            lambda: self.zk.get_children_async(self.replicas_path, include_data=True), "list the replicas"
        )
        marker = self.truncated()
        if not names:
            return marker
        lowest = [self.snapshot_applied(n) for n in names]
        if any(a is None for a in lowest):
            return marker  # a live replica without a snapshot needs the whole log
        target = min(a for a in lowest if a is not None) + 1
        if target > marker:
            try:
                _, mstat = self._call(lambda: self.zk.get_async(self.truncated_path), "read the marker")
            except NoNodeError:
                self.ensure()
                return marker
            version = mstat.version
            tx = self.zk.transaction()
            tx.check(self.replicas_path, stat.version)
            tx.set_data(self.truncated_path, dumps(target), version=version)
            results = self._call(tx.commit_async, "move the truncation marker")
            if any(isinstance(r, Exception) for r in results):  # BadVersionError, mostly
                return self.truncated()  # a replica registered, or another truncation won: next time
            marker = target
        self._remove_below(marker, live=set(names))
        return marker

    def _remove_below(self, marker: int, *, live: set[str]) -> None:
        doomed = [i for i in self.indices() if i < marker]
        pending = [self.zk.delete_async(f"{self.log_path}/{LOG_PREFIX}{i:010d}") for i in doomed]
        for result in pending:
            # another replica removed it, or the connection dropped: the next truncation removes it
            with contextlib.suppress(NoNodeError, *TRANSIENT, self.zk.handler.timeout_exception):
                result.get(timeout=self.timeout)
        # snapshots of replicas gone for good that the log can no longer follow are useless
        for replica, applied in self.snapshots().items():
            if replica not in live and applied < marker - 1:
                path = f"{self.snapshots_path}/{replica}"
                try:
                    self._drop_chunks(path, keep="")
                    self._call(partial(self.zk.delete_async, path), f"delete {path}")
                except (NoNodeError, NotEmptyError):
                    pass
