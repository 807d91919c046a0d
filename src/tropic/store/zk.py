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
background every few hundred commits: the model sharded by path hash over znodes of at most a few hundred
KB (only shards changed since the previous snapshot are rewritten), the live (non-final) transactions,
and immutable *archive* chunks of final records (each final record is archived once). ZooKeeper's 1 MB
znode and request limit is therefore never reached by a growing model or history.

Layout under the chroot::

    /head                     format, epoch, leader, last log seq, current snapshot (CAS'd by every commit)
    /wal/<seq>                log entries: a JSON list of per-transaction units
    /snap/<epoch>-<gen>       snapshot index: log seq covered, model shard blobs, archives, live chunks
    /data/<blob>              immutable snapshot blobs (model shards, archives, live records, keys)
    /election                 leader election (kazoo Lock recipe; ephemeral sequential nodes)
    /phys/queue/<seq>         started transactions for workers (one entry per commit; their action logs
                              are read from /wal/<seq>, which is kept while the entry exists)
    /phys/claims/<seq>        a worker's ephemeral claim of a queue entry
    /phys/progress/<seq>      per-step outcomes recorded by the worker, per transaction
    /phys/done/r-<n>          workers' completion reports, consumed by the leader
    /phys/kill/<txn>          kill requests (ephemeral, from the leader)
    /workers/<name>           live workers (ephemeral)
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)

from tropic.errors import CorruptStore, StoreError
from tropic.model import Delta, Model, Node, Schema, parent_of
from tropic.records.record import Transaction
from tropic.store.base import Restored, Store
from tropic.store.zkclient import ZkAddress, bounded_call, open_client, parse_zk_uri

__all__ = [
    "FORMAT",
    "LeadershipLost",
    "Paths",
    "ZooKeeperStore",
]

FORMAT = "tropic-zk"
VERSION = 1

# ZooKeeper refuses requests (and znodes) above jute.maxbuffer, 1 MB by default, and every server keeps
# its last 500 committed requests in memory (commitLogCount): a batch is split beyond MAX_ENTRY bytes per
# multi (a log entry plus its queue entry), so that cache stays under 200 MB of the servers' heap.
MAX_ENTRY = 384 * 1024
MAX_BLOB = 384 * 1024
MAX_UNIT = 768 * 1024  # one transaction's change alone in a multi (beyond: refused, it cannot be stored)
SHARD_TARGET = 64 * 1024  # average bytes per model shard when the shard count is chosen
SHARD_LIMIT = MAX_BLOB  # a shard that grows past this doubles the shard count at the next snapshot
SNAPSHOT_ENTRIES = 600  # log entries after which a snapshot is written (bounds the replay on takeover)
SNAPSHOT_BYTES = 12 * 1024 * 1024
KEEP_KEY_CHUNKS = 16  # idempotency keys remembered: the most recent chunks (about 6,000 keys each)
KEEP_KEYS = 100_000  # ... and at most this many in memory
READ_WINDOW = 512  # pipelined reads in flight


class Paths:
    """Znode paths of the distributed store, relative to the chroot."""

    HEAD = "/head"
    WAL = "/wal"
    SNAP = "/snap"
    DATA = "/data"
    ELECTION = "/election"
    QUEUE = "/phys/queue"
    CLAIMS = "/phys/claims"
    PROGRESS = "/phys/progress"
    DONE = "/phys/done"
    KILL = "/phys/kill"
    WORKERS = "/workers"
    ALL = (WAL, SNAP, DATA, ELECTION, QUEUE, CLAIMS, PROGRESS, DONE, KILL, WORKERS)

    @staticmethod
    def seq(n: int) -> str:
        return f"{n:012d}"


class LeadershipLost(StoreError):
    """This store may no longer write: another controller took over, or the election session ended."""

    code = "leadership_lost"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _shard(path: str, shards: int) -> int:
    return zlib.crc32(path.encode()) % shards


@dataclass(slots=True)
class _Unit:
    """Everything one batch changes about one transaction (or, with ``txn`` None, loose changes)."""

    txn: Transaction | None = None
    nodes: list[tuple[str, Node | None]] = field(default_factory=list)
    fences: list[tuple[str, int | None]] = field(default_factory=list)
    key: tuple[str, str] | None = None


@dataclass(slots=True)
class _Head:
    epoch: int = 0
    leader: str = ""
    seq: int = 0
    snap: str | None = None
    since: float = 0.0
    first_commit: float | None = None
    commits: int = 0
    version: int = -1

    def encode(self) -> bytes:
        return _dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "epoch": self.epoch,
                "leader": self.leader,
                "seq": self.seq,
                "snap": self.snap,
                "since": self.since,
                "first_commit": self.first_commit,
                "commits": self.commits,
            }
        )

    @staticmethod
    def decode(data: bytes, version: int, where: str) -> _Head:
        try:
            d = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise CorruptStore(f"{where} is not a tropic store (head is not JSON)", path=Paths.HEAD) from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CorruptStore(
                f"{where} is not a tropic store (its head is no tropic head: {str(d)[:80]!r})",
                path=Paths.HEAD,
            )
        if int(d.get("version", 0)) > VERSION:
            raise CorruptStore(f"{where} was written by a newer tropic (store version {d['version']})")
        return _Head(
            int(d["epoch"]),
            str(d.get("leader", "")),
            int(d["seq"]),
            d.get("snap"),
            float(d.get("since", 0.0)),
            d.get("first_commit"),
            int(d.get("commits", 0)),
            version,
        )


@dataclass(slots=True)
class _Snapshot:
    """What the current snapshot index names (blobs are immutable; only their list changes)."""

    name: str | None = None
    seq: int = 0
    shards: int = 16
    shard_blobs: dict[int, str] = field(default_factory=dict)
    archives: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        return _dumps(
            {
                "seq": self.seq,
                "shards": self.shards,
                "shard_blobs": {str(k): v for k, v in self.shard_blobs.items()},
                "archives": self.archives,
                "keys": self.keys,
                "live": self.live,
            }
        )

    @staticmethod
    def decode(name: str, data: bytes) -> _Snapshot:
        d = orjson.loads(data)
        return _Snapshot(
            name,
            int(d["seq"]),
            int(d["shards"]),
            {int(k): str(v) for k, v in d["shard_blobs"].items()},
            list(d["archives"]),
            list(d["keys"]),
            list(d["live"]),
        )

    def blobs(self) -> set[str]:
        return set(self.shard_blobs.values()) | set(self.archives) | set(self.keys) | set(self.live)


def _chunks(items: Iterable[bytes], limit: int) -> list[bytes]:
    """JSON lists of already-encoded items, each list at most ``limit`` bytes (a larger item alone)."""
    out: list[bytes] = []
    part: list[bytes] = []
    size = 2
    for item in items:
        if part and size + len(item) + 1 > limit:
            out.append(b"[" + b",".join(part) + b"]")
            part, size = [], 2
        part.append(item)
        size += len(item) + 1
    if part:
        out.append(b"[" + b",".join(part) + b"]")
    return out


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
        self._head: _Head | None = None  # set once this store is the writer
        self._session: int | None = None
        self._lock_node: str | None = None  # election node every multi checks (None: no election)
        self._dead: StoreError | None = None
        self._abdicated = False
        # Reported since the last commit, in report order (a unit moves to the end when reported again).
        self._units: dict[Any, _Unit] = {}
        self._attach: list[tuple[str, str, Any]] = []  # node/fence changes waiting for their transaction
        self._bindings: dict[int, tuple[str, str]] = {}  # txn id -> idempotency key (to store with it)
        self._loose = 0
        self._logged: set[int] = set()
        # What a snapshot needs (kept as the log is written).
        self._model: Model | None = None
        self._snap = _Snapshot()
        self._live: dict[int, dict[str, Any]] = {}
        self._finals: list[bytes] = []  # final records (with actions) since the snapshot
        self._new_keys: list[bytes] = []
        self._fences: dict[str, int] = {}
        self._dirty: set[int] = set()
        self._wal_entries = 0
        self._wal_bytes = 0
        self._snapshotting: threading.Thread | None = None
        self._ready: _Snapshot | None = None  # written in the background, switched to at the next commit
        self._garbage: tuple[_Snapshot, _Snapshot] | None = None
        self._carry: tuple[list[bytes], list[bytes], set[int], int, int] | None = None
        self.keys: dict[str, tuple[int, str]] = {}  # idempotency key id -> (txn id, fingerprint)
        # Keys bound to a transaction whose first record is not committed yet (ZooKeeper may be away).
        self.pending_keys: dict[str, tuple[int, str]] = {}
        self._keys_lock = threading.Lock()
        self.commits = 0
        self.snapshots = 0

    # --- helpers -----------------------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        return self.address.connect_string

    def _call(self, start: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        return bounded_call(self.client, start, what=what, timeout=timeout or self.timeout)

    def _where(self) -> str:
        return f"ZooKeeper store {self.uri}"

    def _get_many(self, paths: list[str]) -> list[bytes]:
        """Read many znodes with a window of requests in flight (one round trip per window, not per
        znode); every read is retried under the store's timeout."""
        out: list[bytes] = [b""] * len(paths)
        deadline = time.monotonic() + self.timeout
        for lo in range(0, len(paths), READ_WINDOW):
            batch = [
                (i, self.client.get_async(paths[i])) for i in range(lo, min(len(paths), lo + READ_WINDOW))
            ]
            for i, res in batch:
                try:
                    out[i] = res.get(timeout=max(0.1, deadline - time.monotonic()))[0]
                except (ConnectionLoss, OperationTimeoutError, self.client.handler.timeout_exception):
                    out[i] = self._call(partial(self.client.get_async, paths[i]), f"read {paths[i]}")[0]
        return out

    def _read_head(self) -> _Head | None:
        try:
            data, stat = self._call(partial(self.client.get_async, Paths.HEAD), f"read {Paths.HEAD}")
        except NoNodeError:
            return None
        return _Head.decode(data, stat.version, self._where())

    def _ensure_layout(self) -> None:
        for path in Paths.ALL:
            with contextlib.suppress(NodeExistsError):
                self._call(partial(self.client.ensure_path_async, path), f"create {path}")

    # --- leadership ---------------------------------------------------------------------------------
    def bind_election(self, lock_node: str) -> None:
        """Check, in every multi, that ``lock_node`` (this controller's election node) still exists: a
        controller whose election session ended can write nothing, even before anyone bumps the epoch."""
        self._lock_node = lock_node

    def abdicate(self) -> None:
        """Refuse every further commit (a leader stepping down: its successor resumes the work)."""
        self._abdicated = True

    @property
    def epoch(self) -> int | None:
        return None if self._head is None else self._head.epoch

    @property
    def head_info(self) -> dict[str, Any]:
        h = self._head
        return {} if h is None else {"epoch": h.epoch, "seq": h.seq, "snap": h.snap, "commits": h.commits}

    def _take_over(self) -> _Head:
        """Become the store's only writer: bump the head's epoch (deposing any earlier writer)."""
        if self.read_only:
            raise StoreError(f"{self._where()} was opened read-only")
        if self._head is not None:
            return self._head
        self._ensure_layout()
        while True:
            head = self._read_head()
            now = time.time()
            try:
                if head is None:
                    new = _Head(1, self.name, 0, None, now)
                    self._call(
                        partial(self.client.create_async, Paths.HEAD, new.encode()), f"create {Paths.HEAD}"
                    )
                    new.version = 0
                else:
                    new = _Head(head.epoch + 1, self.name, head.seq, head.snap, now)
                    stat = self._call(
                        partial(self.client.set_async, Paths.HEAD, new.encode(), head.version),
                        f"take over {Paths.HEAD}",
                    )
                    new.version = stat.version
            except (NodeExistsError, BadVersionError):
                continue  # another writer moved first: read again and depose it
            self._head = new
            self._session = self.client.client_id[0] if self.client.client_id else None
            return new

    def _check_writable(self) -> _Head:
        if self._dead is not None:
            raise self._dead
        if self._abdicated:
            self._dead = LeadershipLost(f"{self._where()}: this controller stepped down")
            raise self._dead
        return self._take_over()

    def _lost(self, why: str) -> LeadershipLost:
        self._dead = LeadershipLost(f"{self._where()}: {why}; this controller no longer writes")
        return self._dead

    # --- reading -----------------------------------------------------------------------------------
    def has_model(self) -> bool:
        head = self._read_head()
        return head is not None and head.snap is not None

    def restore(self, schema: Schema) -> Restored | None:
        """Take over (unless read-only) and rebuild the state: the snapshot, then the log after it."""
        head = self._read_head() if self.read_only else self._take_over()
        if head is None or head.snap is None:
            return None
        snap = _Snapshot.decode(
            head.snap,
            self._call(partial(self.client.get_async, f"{Paths.SNAP}/{head.snap}"), "read snapshot")[0],
        )
        wal_names = sorted(
            n
            for n in self._call(partial(self.client.get_children_async, Paths.WAL), f"list {Paths.WAL}")
            if snap.seq < int(n) <= head.seq
        )
        shard_items = sorted(snap.shard_blobs.items())
        blob_names = [b for _, b in shard_items] + snap.archives + snap.keys + snap.live
        blobs = self._get_many(
            [f"{Paths.DATA}/{b}" for b in blob_names] + [f"{Paths.WAL}/{n}" for n in wal_names]
        )
        expected = list(range(snap.seq + 1, head.seq + 1))
        if [int(n) for n in wal_names] != expected:
            raise CorruptStore(
                f"{self._where()}: log entries {snap.seq + 1}..{head.seq} are incomplete "
                f"(found {len(wal_names)} of {len(expected)})"
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
            for kid, txn, fp in loads(next(it)):
                self.keys[kid] = (int(txn), fp)
        live: dict[int, dict[str, Any]] = {}
        for _ in snap.live:
            part = loads(next(it))
            for rec in part["live"]:
                live[int(rec["id"])] = rec
            self._fences.update({p: int(t) for p, t in part["fences"].items()})
        finals: list[bytes] = []
        self._dirty = set()
        wal_bytes = 0
        for _ in wal_names:
            raw = next(it)
            wal_bytes += len(raw)
            for unit in loads(raw):
                self._replay(unit, nodes, live, records, finals, snap.shards)
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
            self._model = model
            self._snap = snap
            self._live = live
            self._finals = finals
            self._logged = {i for i, r in live.items() if "delta" in r}
            self._wal_entries = len(wal_names)
            self._wal_bytes = wal_bytes
        return Restored(model, txns, dict(self._fences))

    def _replay(
        self,
        unit: dict[str, Any],
        nodes: dict[str, Node],
        live: dict[int, dict[str, Any]],
        records: dict[int, dict[str, Any]],
        finals: list[bytes],
        shards: int,
    ) -> None:
        for change in unit.get("n", ()):
            path = change[0]
            if len(change) == 1:
                nodes.pop(path, None)
            else:
                nodes[path] = Node(change[1], change[2])
            self._dirty.add(_shard(path, shards))
        for path, txn in unit.get("f", ()):
            if txn is None:
                self._fences.pop(path, None)
            else:
                self._fences[path] = int(txn)
        if "k" in unit:
            kid, fp = unit["k"]
            self.keys[kid] = (int(unit["t"]["id"]), fp)
            # Not in any snapshot yet: the next one must keep it (the log entry will be deleted).
            self._new_keys.append(_dumps([kid, int(unit["t"]["id"]), fp]))
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
            finals.append(_dumps(rec))
        else:
            if "d" in unit:
                rec["delta"] = unit["d"]
            elif "delta" in old:
                rec["delta"] = old["delta"]
            live[tid] = rec

    # --- writing -----------------------------------------------------------------------------------
    def init_model(self, model: Model) -> None:
        """Write ``model`` as the first snapshot of an empty store."""
        head = self._check_writable()
        if head.snap is not None:
            raise StoreError(f"{self._where()} already holds a model; refusing to overwrite it")
        shards = 16
        size = sum(len(p) + 64 for p in model.nodes)
        while size / shards > SHARD_TARGET:
            shards *= 2
        self._model = model
        self._snap = _Snapshot(None, head.seq, shards)
        self._dirty = set(range(shards))
        snap = self._write_snapshot(self._prepare_snapshot())
        self._switch(snap)

    def put_txn(self, txn: Transaction) -> None:
        unit = self._units.pop(txn.id, None)
        if unit is None:
            unit = _Unit(txn)
        self._take_attached(unit)
        binding = self._bindings.pop(txn.id, None)
        if binding is not None:
            unit.key = binding
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
        with self._keys_lock:
            self.pending_keys[kid] = (txn_id, fingerprint)

    def lookup_key(self, kid: str) -> tuple[int, str] | None:
        """The committed transaction and request fingerprint of key ``kid``, or None."""
        with self._keys_lock:
            return self.keys.get(kid)

    def lookup_pending_key(self, kid: str) -> tuple[int, str] | None:
        """The transaction key ``kid`` is bound to while its first record waits for a commit, or None."""
        with self._keys_lock:
            return self.pending_keys.get(kid)

    def _take_attached(self, unit: _Unit) -> None:
        for kind, path, value in self._attach:
            if kind == "n":
                unit.nodes.append((path, value))
            else:
                unit.fences.append((path, value))
        self._attach.clear()

    def _encode(self, unit: _Unit) -> tuple[bytes, bytes | None, dict[str, Any]]:
        """One unit as JSON, the physical queue item it adds (None if none), and the unit as data."""
        d: dict[str, Any] = {}
        queued = None
        t = unit.txn
        if t is not None:
            d["t"] = t.to_dict(actions=False)
            if t.final:
                logged = t.id in self._logged
                self._logged.discard(t.id)
                if t.actions and not logged:
                    d["a"] = [a.to_dict() for a in t.actions]
            elif t.delta is not None and t.id not in self._logged:
                d["a"] = [a.to_dict() for a in t.actions]
                d["d"] = t.delta.to_dict()
                self._logged.add(t.id)
                if self.physical_queue and t.actions:
                    queued = _dumps(
                        {
                            "id": t.id,
                            "procedure": t.procedure,
                            "args": t.args,
                            "times": t.times,
                        }
                    )
            if unit.key is not None:
                d["k"] = list(unit.key)
        if unit.nodes:
            d["n"] = [[p] if n is None else [p, n.kind, n.attrs] for p, n in unit.nodes]
        if unit.fences:
            d["f"] = [[p, txn] for p, txn in unit.fences]
        return _dumps(d), queued, d

    def commit(self) -> None:
        """Write every change reported since the last commit: one multi per chunk of at most
        :data:`MAX_ENTRY` bytes, split only between transactions (a record and its model change always
        travel together).

        Ordering: a unit sits where its transaction was last reported. A transaction that released locks
        is reported (final) before any transaction that takes them is reported (started), so a split
        batch never makes the later transaction durable without the earlier one's release."""
        head = self._check_writable()
        if self._attach:
            self._loose += 1
            unit = _Unit()
            self._take_attached(unit)
            self._units[("loose", self._loose)] = unit
        switch = self._ready
        if not self._units and switch is None:
            return
        units, self._units = self._units, {}
        encoded = [self._encode(u) for u in units.values()]
        for body, queued, _ in encoded:
            size = len(body) + (len(queued) if queued else 0)
            if size > MAX_UNIT:
                raise self._lost(
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
            self._commit_chunk(head, chunk, switch if i == 0 else None)
        for unit, (_, _, data) in zip(units.values(), encoded, strict=True):
            self._remember(unit, data)
        if switch is not None:
            self._switched(switch)
        self.commits += 1
        self._maybe_snapshot()

    def _commit_chunk(
        self, head: _Head, chunk: list[tuple[bytes, bytes | None]], switch: _Snapshot | None
    ) -> None:
        now = time.time()
        new = _Head(
            head.epoch,
            head.leader,
            head.seq + (1 if chunk else 0),
            switch.name if switch is not None else head.snap,
            head.since,
            head.first_commit if head.first_commit is not None else (now if chunk else None),
            head.commits + 1,
            head.version,
        )
        body = b"[" + b",".join(b for b, _ in chunk) + b"]"
        queued = [q for _, q in chunk if q is not None]

        def start() -> Any:
            tx = self.client.transaction()
            if self._lock_node is not None:
                tx.check(self._lock_node, 0)
            tx.set_data(Paths.HEAD, new.encode(), head.version)
            if chunk:
                tx.create(f"{Paths.WAL}/{Paths.seq(new.seq)}", body)
            if queued:
                tx.create(f"{Paths.QUEUE}/{Paths.seq(new.seq)}", b"[" + b",".join(queued) + b"]")
            return tx.commit_async()

        self._run_multi(start, head, new)
        head.version += 1
        head.seq = new.seq
        head.snap = new.snap
        head.first_commit = new.first_commit
        head.commits = new.commits
        if chunk:
            self._wal_entries += 1
            self._wal_bytes += len(body)

    def _run_multi(self, start: Callable[[], Any], head: _Head, new: _Head) -> None:
        """Commit one multi; when its outcome is unknown (connection lost), find out from the head and
        resend if it did not happen. Waits out a lost quorum for as long as the session lives."""
        while True:
            if (
                self._session is not None
                and self.client.client_id
                and self.client.client_id[0] != self._session
            ):
                raise self._lost("the ZooKeeper session expired (another controller may have taken over)")
            try:
                results = start().get(timeout=max(self.timeout, 5.0))
            except SessionExpiredError:
                raise self._lost("the ZooKeeper session expired") from None
            except ConnectionClosedError:
                raise self._lost("the ZooKeeper client was closed") from None
            except (ConnectionLoss, OperationTimeoutError, self.client.handler.timeout_exception):
                if self._applied(head, new):
                    return
                time.sleep(0.05)
                continue
            failure = next((r for r in results if isinstance(r, Exception) and not _rolled_back(r)), None)
            if failure is None:
                return
            if isinstance(failure, NoNodeError) and self._lock_node is not None:
                raise self._lost(f"its election node {self._lock_node} is gone")
            if isinstance(failure, BadVersionError | NodeExistsError):
                if self._applied(head, new):
                    return  # an earlier attempt of this very commit went through
                raise self._lost("another controller took over the store (the head moved on)")
            raise self._lost(f"the commit failed: {type(failure).__name__}")

    def _applied(self, head: _Head, new: _Head) -> bool:
        """After an unknown outcome: True if ``new`` is the head (our multi went through), False if the
        head is unchanged; LeadershipLost if someone else moved it. Waits for a quorum."""
        while True:
            try:
                data, stat = self.client.get_async(Paths.HEAD).get(timeout=max(self.timeout, 5.0))
                break
            except SessionExpiredError:
                raise self._lost("the ZooKeeper session expired") from None
            except (ConnectionLoss, OperationTimeoutError, self.client.handler.timeout_exception):
                time.sleep(0.1)
            except ConnectionClosedError:
                raise self._lost("the ZooKeeper client was closed") from None
        current = _Head.decode(data, stat.version, self._where())
        if stat.version == head.version:
            return False
        if stat.version == head.version + 1 and current.epoch == new.epoch and current.commits == new.commits:
            return True
        raise self._lost(f"another controller took over the store (epoch {current.epoch})")

    def _remember(self, unit: _Unit, data: dict[str, Any]) -> None:
        """Keep what snapshots need from a committed unit (``data``: the unit as written)."""
        shards = self._snap.shards
        for path, _ in unit.nodes:
            self._dirty.add(_shard(path, shards))
        for path, txn in unit.fences:
            if txn is None:
                self._fences.pop(path, None)
            else:
                self._fences[path] = txn
        t = unit.txn
        if t is None:
            return
        if unit.key is not None:
            with self._keys_lock:
                self.keys[unit.key[0]] = (t.id, unit.key[1])
                self.pending_keys.pop(unit.key[0], None)
                if len(self.keys) > 2 * KEEP_KEYS:
                    for kid in list(itertools.islice(self.keys, KEEP_KEYS)):
                        del self.keys[kid]
            self._new_keys.append(_dumps([unit.key[0], t.id, unit.key[1]]))
        prev = self._live.pop(t.id, None) or {}
        rec = dict(data["t"])
        actions = data.get("a", prev.get("actions"))
        if actions is not None:
            rec["actions"] = actions
        if t.final:
            self._finals.append(_dumps(rec))
        else:
            delta = data.get("d", prev.get("delta"))
            if delta is not None:
                rec["delta"] = delta
            self._live[t.id] = rec

    # --- snapshots ---------------------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        if self._snapshotting is not None and self._snapshotting.is_alive():
            return
        self._collect_garbage_async()
        if self._ready is not None or self._model is None:
            return
        if self._wal_entries < self.snapshot_entries and self._wal_bytes < SNAPSHOT_BYTES:
            return
        carry = (self._finals, self._new_keys, self._dirty, self._wal_entries, self._wal_bytes)
        blobs = self._prepare_snapshot()

        def write() -> None:
            try:
                self._ready = self._write_snapshot(blobs)
            except Exception:
                # Not written: what it held goes into the next snapshot (the log it covers is kept).
                self._carry = carry

        self._snapshotting = threading.Thread(target=write, name="tropic-zk-snapshot", daemon=True)
        self._snapshotting.start()

    def _prepare_snapshot(self) -> tuple[_Snapshot, list[tuple[str, bytes]]]:
        """Serialise (on the logical thread, so the state is the committed one) what changed since the
        last snapshot. Writing happens in the background."""
        assert self._model is not None and self._head is not None
        carry, self._carry = self._carry, None
        if carry is not None:
            self._finals = carry[0] + self._finals
            self._new_keys = carry[1] + self._new_keys
            self._dirty |= carry[2]
        head = self._head
        old = self._snap
        gen = f"{head.epoch}-{head.seq}-{self.snapshots + 1}"
        shards = old.shards
        dirty = set(self._dirty)
        buckets: dict[int, list[bytes]] = {i: [] for i in dirty}
        if dirty:
            for path, node in self._model.nodes.items():
                b = buckets.get(_shard(path, shards))
                if b is not None:
                    b.append(_dumps([path, node.kind, node.attrs]))
        if any(sum(len(x) + 1 for x in b) > SHARD_LIMIT for b in buckets.values()):
            shards *= 2  # reshard: every shard is rewritten with the new count
            buckets = {i: [] for i in range(shards)}
            for path, node in self._model.nodes.items():
                buckets[_shard(path, shards)].append(_dumps([path, node.kind, node.attrs]))
        blobs: list[tuple[str, bytes]] = []
        snap = _Snapshot(f"{gen}", head.seq, shards)
        snap.shard_blobs = dict(old.shard_blobs) if shards == old.shards else {}
        for i, items in buckets.items():
            name = f"m{i}-{gen}"
            blobs.append((name, b"[" + b",".join(items) + b"]"))
            snap.shard_blobs[i] = name
        snap.archives = list(old.archives)
        for k, chunk in enumerate(_chunks(self._finals, MAX_BLOB)):
            name = f"a-{gen}-{k}"
            blobs.append((name, chunk))
            snap.archives.append(name)
        recent = self._new_keys
        snap.keys = list(old.keys)
        for k, chunk in enumerate(_chunks(recent, MAX_BLOB)):
            name = f"k-{gen}-{k}"
            blobs.append((name, chunk))
            snap.keys.append(name)
        del snap.keys[:-KEEP_KEY_CHUNKS]  # forget the oldest idempotency keys
        live_items = [_dumps(r) for r in self._live.values()]
        live_chunks = _chunks(live_items, MAX_BLOB) or [b"[]"]
        for k, chunk in enumerate(live_chunks):
            name = f"l-{gen}-{k}"
            fences = self._fences if k == 0 else {}
            blobs.append((name, b'{"live":' + chunk + b',"fences":' + _dumps(fences) + b"}"))
            snap.live.append(name)
        self._finals = []
        self._new_keys = []
        self._dirty = set()
        self._wal_entries = 0
        self._wal_bytes = 0
        return snap, blobs

    def _write_snapshot(self, prepared: tuple[_Snapshot, list[tuple[str, bytes]]]) -> _Snapshot:
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

    def _switch(self, snap: _Snapshot) -> None:
        """Make ``snap`` current with a commit of its own (used for the first snapshot)."""
        self._ready = snap
        self.commit()

    def _switched(self, snap: _Snapshot) -> None:
        old = self._snap
        self._snap = snap
        self._ready = None
        self.snapshots += 1
        if old.name is not None:
            self._garbage = (old, snap)

    def _collect_garbage_async(self) -> None:
        garbage, self._garbage = self._garbage, None
        if garbage is None:
            return
        old, new = garbage
        epoch = self._head.epoch if self._head is not None else 0

        def collect() -> None:
            with contextlib.suppress(Exception):
                self._collect(old, new, epoch)

        self._snapshotting = threading.Thread(target=collect, name="tropic-zk-gc", daemon=True)
        self._snapshotting.start()

    def _collect(self, old: _Snapshot, new: _Snapshot, epoch: int) -> None:
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
            if name in old.blobs() or _blob_epoch(name) < epoch:
                deletes.append(f"{Paths.DATA}/{name}")
        for name in client.get_children(Paths.SNAP):
            if name != new.name and _blob_epoch("x-" + name) < epoch:
                deletes.append(f"{Paths.SNAP}/{name}")
        for lo in range(0, len(deletes), READ_WINDOW):
            for res in [client.delete_async(p) for p in deletes[lo : lo + READ_WINDOW]]:
                with contextlib.suppress(Exception):
                    res.get(timeout=self.timeout)

    def wait_background(self, timeout: float = 30.0) -> None:
        """Wait for a snapshot being written in the background (tests, benchmarks)."""
        th = self._snapshotting
        if th is not None:
            th.join(timeout)

    def close(self) -> None:
        self.wait_background(5.0)
        if self._own_client:
            with contextlib.suppress(Exception):
                self.client.stop()
                self.client.close()


def _rolled_back(e: Exception) -> bool:
    return type(e).__name__ == "RolledBackError"


def _blob_epoch(name: str) -> int:
    """The epoch in a blob or index name (``m3-<epoch>-...``, ``a-<epoch>-...``); large when unknown."""
    parts = name.split("-")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 1 << 62
