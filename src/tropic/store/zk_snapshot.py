"""Snapshots of the ZooKeeper store: what the next snapshot must hold, writing it in the background, and
deleting what no snapshot needs any more.

A snapshot is the model sharded by path hash over znodes of at most a few hundred KB (only shards changed
since the previous snapshot are rewritten), the live (non-final) transactions, and immutable *archive*
chunks of final records (each final record is archived once). ZooKeeper's 1 MB znode and request limit is
therefore never reached by a growing model or history. A snapshot becomes current with the next commit,
which names it in the head.

Idempotency keys go into key chunks (``k-<gen>-<n>-t<newest>``: the name carries when the newest key in it
was bound). A snapshot keeps the most recent :data:`~tropic.store.zk_layout.KEEP_KEY_CHUNKS` chunks whose
newest key is younger than the keys' TTL; the others are no longer named and are deleted with the
previous snapshot's garbage. So the keys in ZooKeeper stay bounded under any load, and each pass deletes
at most the chunks of one snapshot.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from tropic.model import Model, Node
from tropic.store.base import History
from tropic.store.zk_keys import DEFAULT_TTL, KeyBook
from tropic.store.zk_layout import (
    KEEP_KEY_CHUNKS,
    MAX_BLOB,
    READ_WINDOW,
    SHARD_LIMIT,
    SNAPSHOT_BYTES,
    Head,
    Paths,
    SnapshotIndex,
    Unit,
    blob_epoch,
    chunks,
    dumps,
    shard_of,
)

__all__ = ["Prepared", "Snapshots"]

Prepared = tuple[SnapshotIndex, list[tuple[str, bytes]]]  # the new index and its blobs (name, data)
Call = Callable[[Callable[[], Any], str], Any]  # one bounded ZooKeeper call: (start, what) -> result


class Snapshots:
    """What snapshots need, kept as the log is written, and the snapshots' life cycle.

    ``call`` runs one ZooKeeper operation under the store's timeout (see
    :func:`~tropic.store.zkclient.bounded_call`)."""

    def __init__(self, client: KazooClient, *, timeout: float, call: Call) -> None:
        self.client = client
        self.timeout = timeout
        self._call = call
        self.model: Model | None = None
        self.index = SnapshotIndex()  # the current snapshot
        self.live: dict[int, dict[str, Any]] = {}
        self.finals: list[bytes] = []  # final records (with actions) since the snapshot
        self.new_keys: list[bytes] = []
        self.new_keys_newest = 0.0  # when the newest of new_keys was bound
        self.key_ttl = DEFAULT_TTL
        self.key_clock: Callable[[], float] = time.time
        self.fences: dict[str, int] = {}
        self.dirty: set[int] = set()
        self.wal_entries = 0
        self.wal_bytes = 0
        self.count = 0  # snapshots made current by this store
        self._thread: threading.Thread | None = None
        self.ready: SnapshotIndex | None = None  # written in the background, switched to at the next commit
        self._garbage: tuple[SnapshotIndex, SnapshotIndex] | None = None
        self._carry: tuple[list[bytes], list[bytes], set[int], int, int, float] | None = None
        # Retention (tropic.retention.zk): archive chunks -> the chunks replacing them (the records kept),
        # applied by the next snapshot; ``retired``: the chunks replaced, gone once a snapshot without
        # them is current.
        self.retiring: dict[str, list[str]] | None = None
        self.retiring_counts: dict[str, int] = {}  # the counts of the records ``retiring`` removes
        self.retired: set[str] = set()

    # --- keeping up with the log ----------------------------------------------------------------------
    def replay(
        self,
        unit: dict[str, Any],
        nodes: dict[str, Node],
        live: dict[int, dict[str, Any]],
        records: dict[int, dict[str, Any]],
        finals: list[bytes],
        shards: int,
        keys: KeyBook,
    ) -> None:
        """Apply one log unit read back on restore to the state being rebuilt."""
        for change in unit.get("n", ()):
            path = change[0]
            if len(change) == 1:
                nodes.pop(path, None)
            else:
                nodes[path] = Node(change[1], change[2])
            self.dirty.add(shard_of(path, shards))
        for path, txn in unit.get("f", ()):
            if txn is None:
                self.fences.pop(path, None)
            else:
                self.fences[path] = int(txn)
        if "k" in unit:
            kid, fp, *rest = unit["k"]
            at = float(rest[0]) if rest else keys.clock()  # keys logged before they had a time: from now
            keys.restored(kid, int(unit["t"]["id"]), fp, at)
            # Not in any snapshot yet: the next one must keep it (the log entry will be deleted).
            self._new_key(kid, int(unit["t"]["id"]), fp, at)
        rec = unit.get("t")
        if rec is None:
            return
        tid = int(rec["id"])
        old = live.pop(tid, None) or {}
        if "a" in unit:
            rec["actions"] = unit["a"]
        elif "actions" in old:
            rec["actions"] = old["actions"]
        if rec["state"] in ("COMMITTED", "ABORTED", "FAILED"):
            records[tid] = rec
            finals.append(dumps(rec))
        else:
            if "d" in unit:
                rec["delta"] = unit["d"]
            elif "delta" in old:
                rec["delta"] = old["delta"]
            live[tid] = rec

    def remember(self, unit: Unit, data: dict[str, Any]) -> None:
        """Keep what snapshots need from a committed unit (``data``: the unit as written)."""
        shards = self.index.shards
        for path, _ in unit.nodes:
            self.dirty.add(shard_of(path, shards))
        for path, txn in unit.fences:
            if txn is None:
                self.fences.pop(path, None)
            else:
                self.fences[path] = txn
        t = unit.txn
        if t is None:
            return
        if unit.key is not None:
            self._new_key(
                unit.key[0], t.id, unit.key[1], self.key_clock() if unit.key_at is None else unit.key_at
            )
        prev = self.live.pop(t.id, None) or {}
        rec = dict(data["t"])
        actions = data.get("a", prev.get("actions"))
        if actions is not None:
            rec["actions"] = actions
        if t.final:
            self.finals.append(dumps(rec))
        else:
            delta = data.get("d", prev.get("delta"))
            if delta is not None:
                rec["delta"] = delta
            self.live[t.id] = rec

    def _new_key(self, kid: str, txn_id: int, fp: str, at: float) -> None:
        self.new_keys.append(dumps([kid, txn_id, fp, at]))
        self.new_keys_newest = max(self.new_keys_newest, at)

    def _key_chunk_alive(self, name: str) -> bool:
        """Whether key chunk ``name`` holds a key younger than the TTL (chunks named before keys had a
        time are kept, up to KEEP_KEY_CHUNKS)."""
        tail = name.rsplit("-", 1)[-1]
        if not tail.startswith("t") or not tail[1:].isdigit():
            return True
        return self.key_clock() - int(tail[1:]) < self.key_ttl

    def logged(self, size: int) -> None:
        """A log entry of ``size`` bytes was written (the next snapshot covers it)."""
        self.wal_entries += 1
        self.wal_bytes += size

    # --- making snapshots ----------------------------------------------------------------------------
    def maybe_snapshot(self, head: Head, every: int) -> None:
        """Start writing a snapshot in the background once ``every`` log entries (or
        :data:`~tropic.store.zk_layout.SNAPSHOT_BYTES`) were written since the last one."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._collect_garbage_async(head.epoch)
        if self.ready is not None or self.model is None:
            return
        if self.wal_entries < every and self.wal_bytes < SNAPSHOT_BYTES and self.retiring is None:
            return
        carry = (
            self.finals,
            self.new_keys,
            self.dirty,
            self.wal_entries,
            self.wal_bytes,
            self.new_keys_newest,
        )
        retiring, retiring_counts = self.retiring, self.retiring_counts
        blobs = self.prepare(head)

        def write() -> None:
            try:
                self.ready = self.write(blobs)
            except Exception:
                # Not written: what it held goes into the next snapshot (the log it covers is kept).
                self._carry = carry
                self.retiring_counts = retiring_counts
                self.retiring = retiring

        self._thread = threading.Thread(target=write, name="tropic-zk-snapshot", daemon=True)
        self._thread.start()

    def prepare(self, head: Head) -> Prepared:
        """Serialise (on the logical thread, so the state is the committed one) what changed since the
        last snapshot. Writing happens in the background."""
        assert self.model is not None
        carry, self._carry = self._carry, None
        if carry is not None:
            self.finals = carry[0] + self.finals
            self.new_keys = carry[1] + self.new_keys
            self.new_keys_newest = max(self.new_keys_newest, carry[5])
            self.dirty |= carry[2]
        old = self.index
        gen = f"{head.epoch}-{head.seq}-{self.count + 1}"
        shards = old.shards
        dirty = set(self.dirty)
        buckets: dict[int, list[bytes]] = {i: [] for i in dirty}
        if dirty:
            for path, node in self.model.nodes.items():
                b = buckets.get(shard_of(path, shards))
                if b is not None:
                    b.append(dumps([path, node.kind, node.attrs]))
        if any(sum(len(x) + 1 for x in b) > SHARD_LIMIT for b in buckets.values()):
            shards *= 2  # reshard: every shard is rewritten with the new count
            buckets = {i: [] for i in range(shards)}
            for path, node in self.model.nodes.items():
                buckets[shard_of(path, shards)].append(dumps([path, node.kind, node.attrs]))
        blobs: list[tuple[str, bytes]] = []
        snap = SnapshotIndex(f"{gen}", head.seq, shards)
        snap.shard_blobs = dict(old.shard_blobs) if shards == old.shards else {}
        for i, items in buckets.items():
            name = f"m{i}-{gen}"
            blobs.append((name, b"[" + b",".join(items) + b"]"))
            snap.shard_blobs[i] = name
        retiring, self.retiring = self.retiring, None
        snap.archives = [n for a in old.archives for n in (retiring or {}).get(a, [a])]
        snap.retired = dict(old.retired)
        if retiring is not None:  # its records' counts go with their removal, in the same index
            counts, self.retiring_counts = self.retiring_counts, {}
            snap.retired = merge_counts(old.retired, counts)
        for k, chunk in enumerate(chunks(self.finals, MAX_BLOB)):
            name = f"a-{gen}-{k}"
            blobs.append((name, chunk))
            snap.archives.append(name)
        recent = self.new_keys
        snap.keys = [name for name in old.keys if self._key_chunk_alive(name)]  # drop expired keys
        newest = int(self.new_keys_newest) + 1  # rounded up: a chunk is dropped once all of it expired
        for k, chunk in enumerate(chunks(recent, MAX_BLOB)):
            name = f"k-{gen}-{k}-t{newest}"
            blobs.append((name, chunk))
            snap.keys.append(name)
        del snap.keys[:-KEEP_KEY_CHUNKS]  # forget the oldest idempotency keys
        live_items = [dumps(r) for r in self.live.values()]
        live_chunks = chunks(live_items, MAX_BLOB) or [b"[]"]
        for k, chunk in enumerate(live_chunks):
            name = f"l-{gen}-{k}"
            fences = self.fences if k == 0 else {}
            blobs.append((name, b'{"live":' + chunk + b',"fences":' + dumps(fences) + b"}"))
            snap.live.append(name)
        self.finals = []
        self.new_keys = []
        self.new_keys_newest = 0.0
        self.dirty = set()
        self.wal_entries = 0
        self.wal_bytes = 0
        return snap, blobs

    def write(self, prepared: Prepared) -> SnapshotIndex:
        """Write a prepared snapshot's blobs, then its index (it is not current until a commit says so)."""
        snap, blobs = prepared
        data = dict(blobs)
        pending = [(name, self.client.create_async(f"{Paths.DATA}/{name}", data)) for name, data in blobs]
        for name, res in pending:
            try:
                res.get(timeout=self.timeout)
            except NodeExistsError:
                pass
            except Exception:
                self._call(
                    partial(self.client.create_async, f"{Paths.DATA}/{name}", data[name]),
                    f"write snapshot blob {name}",
                )
        index = f"{Paths.SNAP}/{snap.name}"
        with contextlib.suppress(NodeExistsError):
            self._call(partial(self.client.create_async, index, snap.encode()), f"write {index}")
        return snap

    def switched(self, snap: SnapshotIndex) -> None:
        """A commit made ``snap`` current: the previous one becomes garbage."""
        old = self.index
        self.index = snap
        self.ready = None
        self.count += 1
        if old.name is not None:
            self._garbage = (old, snap)

    # --- retention --------------------------------------------------------------------------------
    def busy(self) -> bool:
        """A snapshot (or a collection) is being written, or one failed to be (its records are pending)."""
        th = self._thread
        return (th is not None and th.is_alive()) or self._carry is not None

    def retention_pending(self) -> bool:
        """A retirement not yet in the current snapshot (a pass waits for it: it would redo it)."""
        return self.retiring is not None or not self.retired.isdisjoint(self.index.archives)

    def retire(self, replace: dict[str, list[bytes]], epoch: int, counts: dict[str, int]) -> None:
        """Replace archive chunks: each by new chunks holding the records it keeps (``replace``: chunk ->
        those records, encoded), from the next snapshot on. The new chunks are written now; the replaced
        ones are deleted once a snapshot without them is current, whose index adds ``counts`` (those of
        the records removed, a :class:`~tropic.store.base.History` as data) to its ``retired``, so a
        restart still counts them. Called off the logical thread."""
        stamp = time.time_ns() // 1000
        blobs: list[tuple[str, bytes]] = []
        plan: dict[str, list[str]] = {}
        for i, (name, kept) in enumerate(replace.items()):
            plan[name] = []
            for k, chunk in enumerate(chunks(kept, MAX_BLOB)):
                new = f"a-{epoch}-r{stamp}-{i}-{k}"
                blobs.append((new, chunk))
                plan[name].append(new)
        for new, data in blobs:
            with contextlib.suppress(NodeExistsError):
                self._call(partial(self.client.create_async, f"{Paths.DATA}/{new}", data), f"write {new}")
        self.retired = set(plan)
        self.retiring_counts = dict(counts)  # (before ``retiring``: the logical thread takes both once
        self.retiring = plan  # it sees ``retiring``)

    # --- deleting what no snapshot needs -------------------------------------------------------------
    def _collect_garbage_async(self, epoch: int) -> None:
        garbage, self._garbage = self._garbage, None
        if garbage is None:
            return
        old, new = garbage

        def collect() -> None:
            with contextlib.suppress(Exception):
                self._collect(old, new, epoch)

        self._thread = threading.Thread(target=collect, name="tropic-zk-gc", daemon=True)
        self._thread.start()

    def _collect(self, old: SnapshotIndex, new: SnapshotIndex, epoch: int) -> None:
        """Delete what no snapshot needs any more: log entries it covers, the previous index, replaced
        blobs, and blobs of unfinished snapshots of earlier epochs."""
        client = self.client
        deletes = [f"{Paths.SNAP}/{old.name}"]
        # A log entry whose transactions are still on the physical queue is kept: workers read their
        # action logs from it (the queue entry only names them).
        queued = set(client.get_children(Paths.QUEUE))
        covered = [n for n in client.get_children(Paths.WAL) if int(n) <= new.seq]
        deletes += [f"{Paths.WAL}/{n}" for n in covered if n not in queued]
        keep = new.blobs()
        for name in client.get_children(Paths.DATA):
            if name in keep:
                continue
            if name in old.blobs() or blob_epoch(name) < epoch:
                deletes.append(f"{Paths.DATA}/{name}")
        for name in client.get_children(Paths.SNAP):
            if name != new.name and blob_epoch("x-" + name) < epoch:
                deletes.append(f"{Paths.SNAP}/{name}")
        for lo in range(0, len(deletes), READ_WINDOW):
            for res in [client.delete_async(p) for p in deletes[lo : lo + READ_WINDOW]]:
                with contextlib.suppress(Exception):
                    res.get(timeout=self.timeout)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for a snapshot (or a collection) running in the background."""
        th = self._thread
        if th is not None:
            th.join(timeout)


def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two counts of removed records (:class:`~tropic.store.base.History` as data) added up."""
    h = History(**a)
    h.add(History(**b))
    return h.to_dict()
