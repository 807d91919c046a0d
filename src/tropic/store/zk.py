"""The distributed store: the controller's state in ZooKeeper, written as a log of atomic group commits.

Every :meth:`ZooKeeperStore.commit` is one ZooKeeper multi-op transaction (or a few, each atomic, when a
batch exceeds ZooKeeper's request limit): a compare-and-set of the *head* znode plus one write-ahead-log
entry holding the batch's changes (transaction records, action logs and model deltas written once,
model node changes, fences, idempotency keys) and, when started transactions go to worker processes,
one *physical queue* entry listing them. A transaction's state change and its model change are in the
same entry, so they are durable together; the batch costs two or three ZooKeeper operations however many
transactions it carries.

The head's version is the fencing token. Taking over (:meth:`ZooKeeperStore.restore`) bumps it, so the
next write of a deposed leader fails its compare-and-set; under leader election every multi also checks
that the leader's ephemeral election node still exists (the election's session is alive). A deposed
writer gets :class:`LeadershipLost` and never writes again.

State is rebuilt from the latest *snapshot* plus the log entries after it. Snapshots are written in the
background every few hundred commits, in chunks that stay below ZooKeeper's 1 MB request limit.

The parts: :mod:`~tropic.store.zk_layout` (znode paths, limits, encodings), :mod:`~tropic.store.zk_writer`
(the fenced writer of the head and the log), :mod:`~tropic.store.zk_snapshot` (snapshots and their
collection), :mod:`~tropic.store.zk_keys` (idempotency keys); this module assembles them into the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError

from tropic.errors import CorruptStore, StoreError
from tropic.model import Delta, Model, Node, Schema, parent_of
from tropic.records.query import TxnQuery
from tropic.records.record import Transaction
from tropic.retry import RetryPolicy
from tropic.store import zk_pages
from tropic.store.archive import Archive, with_archived
from tropic.store.base import History, Restored, Store
from tropic.store.observations import ObservationRow
from tropic.store.zk_keys import KeyBook
from tropic.store.zk_layout import (
    FORMAT,
    MAX_ENTRY,
    MAX_UNIT,
    READ_WINDOW,
    SHARD_TARGET,
    SNAPSHOT_ENTRIES,
    Head,
    Paths,
    SnapshotIndex,
    Unit,
    encode_unit,
)
from tropic.store.zk_obs import ZkObservations
from tropic.store.zk_snapshot import Snapshots
from tropic.store.zk_writer import LeadershipLost, LogWriter
from tropic.store.zkclient import ZkAddress, open_client, parse_zk_uri

_T = TypeVar("_T")

__all__ = [
    "FORMAT",
    "MAX_ENTRY",
    "READ_RETRY",
    "LeadershipLost",
    "Paths",
    "ZooKeeperStore",
]


# A read-only restore reads the head, then what it names; the writer may meanwhile make a new snapshot
# current and collect the old one. The reader then starts again from the new head, this many times at
# most (a reader overtaken every time is told so: StoreError).
READ_RETRY = RetryPolicy(attempts=5, backoff_s=0.05, max_backoff_s=1.0, jitter=0.25, deadline_s=None)


class _Overtaken(Exception):
    """A read-only restore found gone what its head named: the writer has collected it since."""


class ZooKeeperStore(Store):
    """``zk://host:port[,host:port...]/chroot``: see the module docstring.

    ``client``: share a started kazoo client (e.g. the leader election's, so the store writes with the
    election's session); otherwise the store opens and owns one. ``physical_queue``: hand started
    transactions to worker processes through ``/phys/queue`` (see :mod:`tropic.txn.remote`).
    ``read_only``: inspect without taking over (writes are refused). ``timeout``: seconds a read or a
    takeover may wait for a quorum before :class:`~tropic.store.zkclient.ZooKeeperUnavailable`; commits
    wait for the quorum to return for as long as the session lives (nothing reported is dropped).
    """

    def __init__(
        self,
        target: str | ZkAddress,
        *,
        client: KazooClient | None = None,
        name: str = "controller",
        physical_queue: bool = False,
        read_only: bool = False,
        timeout: float = 30.0,
        session_timeout: float = 10.0,
        snapshot_entries: int = SNAPSHOT_ENTRIES,
    ) -> None:
        self.address = parse_zk_uri(target) if isinstance(target, str) else target
        self.uri = str(self.address)
        self.name = name
        self.physical_queue = physical_queue
        self.read_only = read_only
        self.timeout = timeout
        self.snapshot_entries = snapshot_entries
        self._own_client = client is None
        self.client: KazooClient = client or open_client(
            self.address, connect_timeout=timeout, session_timeout=session_timeout
        )
        self._writer = LogWriter(
            self.client, name=name, read_only=read_only, timeout=timeout, where=self._where()
        )
        self._snaps = Snapshots(self.client, timeout=timeout, call=self._writer.call)
        self._keys = KeyBook()
        # Reported since the last commit, in report order (a unit moves to the end when reported again).
        self._units: dict[Any, Unit] = {}
        self._attach: list[tuple[str, str, Any]] = []  # node/fence changes waiting for their transaction
        self._bindings: dict[int, tuple[str, str]] = {}  # txn id -> idempotency key (to store with it)
        self._loose = 0
        self._logged: set[int] = set()  # transactions whose action log (and delta) is in the log
        self.commits = 0
        self.archive: Archive | None = None  # where retention put the records it removed (tropic.retention)
        self._ranges = zk_pages.ChunkRanges()  # id range of each archive chunk read (pages skip the others)
        self._obs = ZkObservations(self.client, self._writer, self._get_many)

    # --- helpers -----------------------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        return self.address.connect_string

    @property
    def keys(self) -> dict[str, tuple[int, str]]:
        """Committed idempotency keys: key id -> (txn id, fingerprint)."""
        return self._keys.committed

    def set_key_ttl(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        """Idempotency keys live ``ttl`` seconds of ``clock`` (wall-clock: stored with each key)."""
        self._keys.ttl, self._keys.clock = ttl, clock
        self._snaps.key_ttl, self._snaps.key_clock = ttl, clock

    @property
    def pending_keys(self) -> dict[str, tuple[int, str]]:
        """Keys bound to a transaction whose first record is not committed yet (ZooKeeper may be away)."""
        return self._keys.pending

    @property
    def snapshots(self) -> int:
        """Snapshots this store made current."""
        return self._snaps.count

    def _where(self) -> str:
        return f"ZooKeeper store {self.uri}"

    def _get_many(self, paths: list[str]) -> list[bytes]:
        """Read many znodes with a window of requests in flight (one round trip per window, not per
        znode); every read is retried under the store's timeout."""
        out: list[bytes] = [b""] * len(paths)
        deadline = time.monotonic() + self.timeout
        call = self._writer.call
        for lo in range(0, len(paths), READ_WINDOW):
            batch = [
                (i, self.client.get_async(paths[i])) for i in range(lo, min(len(paths), lo + READ_WINDOW))
            ]
            for i, res in batch:
                try:
                    out[i] = res.get(timeout=max(0.1, deadline - time.monotonic()))[0]
                except (ConnectionLoss, OperationTimeoutError, self.client.handler.timeout_exception):
                    out[i] = call(partial(self.client.get_async, paths[i]), f"read {paths[i]}")[0]
        return out

    # --- leadership ---------------------------------------------------------------------------------
    def bind_election(self, lock_node: str) -> None:
        """Check, in every multi, that ``lock_node`` (this controller's election node) still exists: a
        controller whose election session ended can write nothing, even before anyone bumps the epoch."""
        self._writer.lock_node = lock_node

    @property
    def election_node(self) -> str | None:
        """The election node bound by :meth:`bind_election` (None until then): what other writers of this
        controller (the autopilot's decision log) check too."""
        return self._writer.lock_node

    def abdicate(self) -> None:
        """Refuse every further commit (a leader stepping down: its successor resumes the work)."""
        self._writer.abdicated = True

    @property
    def epoch(self) -> int | None:
        head = self._writer.head
        return None if head is None else head.epoch

    @property
    def head_info(self) -> dict[str, Any]:
        h = self._writer.head
        return {} if h is None else {"epoch": h.epoch, "seq": h.seq, "snap": h.snap, "commits": h.commits}

    # --- reading -----------------------------------------------------------------------------------
    def has_model(self) -> bool:
        head = self._writer.read_head()
        return head is not None and head.snap is not None

    def restore(self, schema: Schema) -> Restored | None:
        """Take over (unless read-only) and rebuild the state: the snapshot, then the log after it.

        Read-only, the store may be live: when the writer collects what the head read named before it is
        read, the restore starts again from the new head (:data:`READ_RETRY`)."""
        if not self.read_only:
            return self._restore(schema, self._writer.take_over())

        def attempt() -> Restored | None:
            self._keys = KeyBook(self._keys.ttl, self._keys.clock)
            self._snaps.fences = {}
            return self._restore(schema, self._writer.read_head())

        try:
            return READ_RETRY.call(attempt, retry_on=(_Overtaken,))
        except _Overtaken as e:
            raise StoreError(
                f"{self._where()}: the store kept changing under a read-only restore "
                f"({READ_RETRY.attempts} attempts; last: {e})"
            ) from None

    def _missing(self, head: Head, problem: str) -> Exception:
        """The error for a part named by ``head`` not found: overtaken if the writer has moved on to
        another snapshot since (read-only), else the store is corrupt."""
        if self.read_only:
            now = self._writer.read_head()
            if now is None or now.snap != head.snap or now.epoch != head.epoch:
                return _Overtaken(f"head {head.seq} read, then {problem}: collected meanwhile")
        return CorruptStore(f"{self._where()}: {problem}")

    def _restore(self, schema: Schema, head: Head | None) -> Restored | None:
        w = self._writer
        if head is None or head.snap is None:
            return None
        try:
            index = w.call(partial(self.client.get_async, f"{Paths.SNAP}/{head.snap}"), "read snapshot")[0]
            snap = SnapshotIndex.decode(head.snap, index)
            wal_names = sorted(
                n
                for n in w.call(partial(self.client.get_children_async, Paths.WAL), f"list {Paths.WAL}")
                if snap.seq < int(n) <= head.seq
            )
            shard_items = sorted(snap.shard_blobs.items())
            blob_names = [b for _, b in shard_items] + snap.archives + snap.keys + snap.live
            blobs = self._get_many(
                [f"{Paths.DATA}/{b}" for b in blob_names] + [f"{Paths.WAL}/{n}" for n in wal_names]
            )
        except NoNodeError:
            gone = f"a part of snapshot {head.snap} or of the log after it is missing"
            raise self._missing(head, gone) from None
        expected = list(range(snap.seq + 1, head.seq + 1))
        if [int(n) for n in wal_names] != expected:
            raise self._missing(
                head,
                f"log entries {snap.seq + 1}..{head.seq} are incomplete "
                f"(found {len(wal_names)} of {len(expected)})",
            )
        loads = orjson.loads
        it = iter(blobs)
        model = Model(schema)
        nodes, kids = model.nodes, model.kids
        for _ in shard_items:
            for path, kind, attrs in loads(next(it)):
                nodes[path] = Node(kind, attrs)
        records: dict[int, dict[str, Any]] = {}
        for _ in snap.archives:
            for rec in loads(next(it)):
                records[int(rec["id"])] = rec
        for _ in snap.keys:
            for kid, txn, fp, *at in loads(next(it)):
                self._keys.restored(kid, int(txn), fp, at[0] if at else None)
        snaps = self._snaps
        live: dict[int, dict[str, Any]] = {}
        for _ in snap.live:
            part = loads(next(it))
            for rec in part["live"]:
                live[int(rec["id"])] = rec
            snaps.fences.update({p: int(t) for p, t in part["fences"].items()})
        finals: list[bytes] = []
        snaps.dirty = set()
        wal_bytes = 0
        for _ in wal_names:
            raw = next(it)
            wal_bytes += len(raw)
            for unit in loads(raw):
                snaps.replay(unit, nodes, live, records, finals, snap.shards, self._keys)
        for path in nodes:
            if path != "/":
                parent = parent_of(path)
                s = kids.get(parent)
                if s is None:
                    kids[parent] = s = set()
                s.add(path.rsplit("/", 1)[1])
        records.update(live)
        txns = [Transaction.from_dict(records[i]) for i in sorted(records)]
        if not self.read_only:
            snaps.model = model
            snaps.index = snap
            snaps.live = live
            snaps.finals = finals
            snaps.wal_entries = len(wal_names)
            snaps.wal_bytes = wal_bytes
            self._logged = {i for i, r in live.items() if "delta" in r}
        retired = History(**snap.retired) if snap.retired else None
        return Restored(model, txns, dict(snaps.fences), retired=retired)

    def get_txn(self, txn_id: int) -> Transaction | None:
        rec = self._reading(
            lambda archives, recent: zk_pages.find(txn_id, recent, archives, self._ranges, self._read_chunks)
        )
        if rec is None and self.archive is not None:
            found = self.archive.find(txn_id)
            rec = None if found is None else found[0]
        return None if rec is None else Transaction.from_dict(rec)

    def find_txns(self, query: TxnQuery, extra: int = 0) -> list[Transaction]:
        """One page read from ZooKeeper at the cost of the page (see :mod:`~tropic.store.zk_pages`)."""
        want = query.limit + extra
        stored = self._reading(
            lambda archives, recent: zk_pages.page(
                recent.values(), archives, self._ranges, self._read_chunks, query, want
            )
        )
        return with_archived(stored, self.archive, query, want)

    def _history(self) -> dict[int, dict[str, Any]]:
        """Every committed record (a full read: for tests and tools)."""

        def everything(archives: list[str], recent: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
            out = {int(r["id"]): r for records in self._read_chunks(archives) for r in records}
            out.update(recent)
            return out

        return self._reading(everything)

    def _reading(self, read: Callable[[list[str], dict[int, dict[str, Any]]], _T]) -> _T:
        """``read(archive chunks, the other records)`` of the current snapshot: nothing of the history
        stays in this process. A snapshot switched (and its predecessor collected) during the read makes
        it start again."""
        for attempt in range(3):
            try:
                return read(*self._read_recent())
            except NoNodeError:
                if attempt == 2:
                    raise StoreError(f"{self._where()}: history kept changing while being read") from None
        raise AssertionError("unreachable")

    def _read_recent(self) -> tuple[list[str], dict[int, dict[str, Any]]]:
        """The current snapshot's archive chunks (not read) and the records not in them: its live
        records and those of the log after it."""
        w = self._writer
        head = w.read_head()
        if head is None or head.snap is None:
            return [], {}
        index = w.call(partial(self.client.get_async, f"{Paths.SNAP}/{head.snap}"), "read snapshot")[0]
        snap = SnapshotIndex.decode(head.snap, index)
        wal_names = sorted(
            (
                n
                for n in w.call(partial(self.client.get_children_async, Paths.WAL), f"list {Paths.WAL}")
                if snap.seq < int(n) <= head.seq
            ),
            key=int,
        )
        blobs = self._get_many(
            [f"{Paths.DATA}/{b}" for b in snap.live] + [f"{Paths.WAL}/{n}" for n in wal_names]
        )
        loads = orjson.loads
        records: dict[int, dict[str, Any]] = {}
        it = iter(blobs)
        for _ in snap.live:
            for rec in loads(next(it))["live"]:
                records[int(rec["id"])] = rec
        for raw in it:
            for unit in loads(raw):
                rec = unit.get("t")
                if rec is None:
                    continue
                tid = int(rec["id"])
                if "a" in unit:
                    rec["actions"] = unit["a"]
                elif tid in records and "actions" in records[tid]:
                    rec["actions"] = records[tid]["actions"]
                records[tid] = rec
        return list(snap.archives), records

    def _read_chunks(self, names: list[str]) -> list[list[dict[str, Any]]]:
        return [orjson.loads(b) for b in self._get_many([f"{Paths.DATA}/{n}" for n in names])]

    # --- retention (see tropic.retention.zk; called off the logical thread) ---------------------------
    def retention_view(self) -> tuple[list[str], int, set[int]] | None:
        """The current snapshot's archive chunks (oldest first), how many final records are not in a
        chunk yet, and the transactions a fence, an idempotency key or a live record refers to; None
        while an earlier pass's removal is not in the current snapshot yet.

        Read while the logical thread commits: taken again until no snapshot was being written and
        nothing moved meanwhile (a snapshot moves the pending final records into new chunks)."""
        snaps = self._snaps
        if self.read_only or snaps.model is None:
            return None
        for _ in range(200):
            if snaps.retention_pending():
                return None
            # A snapshot written and waiting for its commit holds every chunk (and a few new ones).
            seen = (snaps.index, snaps.ready, snaps.finals)
            if not snaps.busy():
                # (dict() and list() copy what the logical thread changes in one step)
                pinned = set(dict(snaps.fences).values()) | set(dict(snaps.live)) | self._keys.txns()
                view = (list((seen[1] or seen[0]).archives), len(seen[2]), pinned)
                now = (snaps.index, snaps.ready, snaps.finals)
                if not snaps.busy() and all(a is b for a, b in zip(seen, now, strict=True)):
                    return view
            time.sleep(0.025)
        return None

    def read_archive_chunks(self, names: list[str]) -> list[list[dict[str, Any]]]:
        """The records of these archive chunks (with their action logs)."""
        return self._read_chunks(names)

    def retire_archive_chunks(self, replace: dict[str, list[dict[str, Any]]], counts: History) -> None:
        """Remove archive chunks from the next snapshot on, each replaced by one holding the records in
        ``replace`` (the ones it keeps), and add ``counts`` (the removed records') to those the snapshot
        keeps for a restart; see :meth:`~tropic.store.zk_snapshot.Snapshots.retire`."""
        w = self._writer
        if w.head is None or w.dead is not None or w.abdicated:
            raise LeadershipLost(f"{self._where()}: not the writer; retention removes nothing")
        kept = {n: [orjson.dumps(r) for r in records] for n, records in replace.items()}
        self._snaps.retire(kept, w.head.epoch, counts.to_dict())

    # --- observations (the knowledge base; see tropic.store.zk_obs) ---------------------------------
    def append_observations(self, rows: Sequence[ObservationRow]) -> None:
        self._obs.append(rows)

    def observations(
        self,
        subject_prefix: str = "",
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[ObservationRow]:
        return self._obs.query(subject_prefix, metric, since, until, limit)

    def trim_observations(self, older_than: float | None = None, max_rows: int | None = None) -> int:
        return self._obs.trim(older_than, max_rows)

    # --- writing -----------------------------------------------------------------------------------
    def init_model(self, model: Model) -> None:
        """Write ``model`` as the first snapshot of an empty store."""
        head = self._writer.check_writable()
        if head.snap is not None:
            raise StoreError(f"{self._where()} already holds a model; refusing to overwrite it")
        shards = 16
        size = sum(len(p) + 64 for p in model.nodes)
        while size / shards > SHARD_TARGET:
            shards *= 2
        snaps = self._snaps
        snaps.model = model
        snaps.index = SnapshotIndex(None, head.seq, shards)
        snaps.dirty = set(range(shards))
        # Made current with a commit of its own.
        snaps.ready = snaps.write(snaps.prepare(head))
        self.commit()

    def put_txn(self, txn: Transaction) -> None:
        unit = self._units.pop(txn.id, None)
        if unit is None:
            unit = Unit(txn)
        self._take_attached(unit)
        binding = self._bindings.pop(txn.id, None)
        if binding is not None:
            unit.key = binding
            unit.key_at = self._keys.bound_at(binding[0])
        self._units[txn.id] = unit  # (re)inserted last: see the ordering note in commit()

    def put_delta(self, delta: Delta, *, revert: bool = False) -> None:
        items = delta.before if revert else delta.after
        self._attach.extend(("n", p, n) for p, n in items.items())

    def put_fence(self, path: str, txn: int | None) -> None:
        self._attach.append(("f", path, txn))

    def bind_key(self, txn_id: int, kid: str, fingerprint: str) -> None:
        """Store idempotency key ``kid`` with transaction ``txn_id``'s first record (same multi), so a
        retried submission finds it after any crash. Call on the logical thread before that record."""
        self._bindings[txn_id] = (kid, fingerprint)
        self._keys.bind(kid, txn_id, fingerprint)

    def lookup_key(self, kid: str) -> tuple[int, str] | None:
        """The committed transaction and request fingerprint of key ``kid``, or None."""
        return self._keys.lookup(kid)

    def lookup_pending_key(self, kid: str) -> tuple[int, str] | None:
        """The transaction key ``kid`` is bound to while its first record waits for a commit, or None."""
        return self._keys.lookup_pending(kid)

    def _take_attached(self, unit: Unit) -> None:
        for kind, path, value in self._attach:
            if kind == "n":
                unit.nodes.append((path, value))
            else:
                unit.fences.append((path, value))
        self._attach.clear()

    def commit(self) -> None:
        """Write every change reported since the last commit: one multi per chunk of at most
        :data:`MAX_ENTRY` bytes, split only between transactions (a record and its model change always
        travel together).

        Ordering: a unit sits where its transaction was last reported. A transaction that released locks
        is reported (final) before any transaction that takes them is reported (started), so a split
        batch never makes the later transaction durable without the earlier one's release."""
        w = self._writer
        head = w.check_writable()
        if self._attach:
            self._loose += 1
            unit = Unit()
            self._take_attached(unit)
            self._units[("loose", self._loose)] = unit
        snaps = self._snaps
        switch = snaps.ready
        if not self._units and switch is None:
            return
        units, self._units = self._units, {}
        encoded = [encode_unit(u, self._logged, self.physical_queue) for u in units.values()]
        for body, queued, _ in encoded:
            size = len(body) + (len(queued) if queued else 0)
            if size > MAX_UNIT:
                raise w.lost(
                    f"one transaction's change is {size} bytes, more than fits in a ZooKeeper request"
                )
        chunks: list[list[tuple[bytes, bytes | None]]] = []
        size = 0
        for body, queued, _ in encoded:
            n = len(body) + (len(queued) if queued else 0)
            if not chunks or (chunks[-1] and size + n > MAX_ENTRY):
                chunks.append([])
                size = 0
            chunks[-1].append((body, queued))
            size += n
        if not chunks:
            chunks.append([])
        for i, chunk in enumerate(chunks):
            written = w.append(head, chunk, switch.name if switch is not None and i == 0 else None)
            if chunk:
                snaps.logged(written)
        for unit, (_, _, data) in zip(units.values(), encoded, strict=True):
            t = unit.txn
            if t is not None and unit.key is not None:
                self._keys.stored(unit.key[0], t.id, unit.key[1])
            snaps.remember(unit, data)
        if switch is not None:
            snaps.switched(switch)
        self.commits += 1
        snaps.maybe_snapshot(head, self.snapshot_entries)

    def wait_background(self, timeout: float = 30.0) -> None:
        """Wait for a snapshot being written in the background (tests, benchmarks)."""
        self._snaps.wait(timeout)

    def close(self) -> None:
        self.wait_background(5.0)
        if self._own_client:
            with contextlib.suppress(Exception):
                self.client.stop()
                self.client.close()
