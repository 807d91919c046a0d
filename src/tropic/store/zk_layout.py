"""The ZooKeeper store's data layout: znode paths, size limits, and how the head, a snapshot index and a
log unit are encoded.

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

A log unit is one transaction's change in one commit (``t``: the record without its actions, ``a``: the
action log, written once, ``d``: the model delta of a live transaction, ``n``: model node changes, ``f``:
fence changes, ``k``: the idempotency key stored with its first record); a unit without ``t`` carries
loose changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tropic.errors import CorruptStore
from tropic.model import Node
from tropic.records.record import Transaction

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


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def shard_of(path: str, shards: int) -> int:
    """The model shard a node path belongs to."""
    return zlib.crc32(path.encode()) % shards


@dataclass(slots=True)
class Head:
    """The ``/head`` znode; ``version`` is its ZooKeeper version, the fencing token."""

    epoch: int = 0
    leader: str = ""
    seq: int = 0
    snap: str | None = None
    since: float = 0.0
    first_commit: float | None = None
    commits: int = 0
    version: int = -1

    def encode(self) -> bytes:
        return dumps(
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
    def decode(data: bytes, version: int, where: str) -> Head:
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
        return Head(
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
class SnapshotIndex:
    """What the current snapshot index names (blobs are immutable; only their list changes)."""

    name: str | None = None
    seq: int = 0
    shards: int = 16
    shard_blobs: dict[int, str] = field(default_factory=dict)
    archives: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    retired: dict[str, int] = field(default_factory=dict)  # counts of records retention removed (History)

    def encode(self) -> bytes:
        return dumps(
            {
                "seq": self.seq,
                "shards": self.shards,
                "shard_blobs": {str(k): v for k, v in self.shard_blobs.items()},
                "archives": self.archives,
                "keys": self.keys,
                "live": self.live,
                "retired": self.retired,
            }
        )

    @staticmethod
    def decode(name: str, data: bytes) -> SnapshotIndex:
        d = orjson.loads(data)
        return SnapshotIndex(
            name,
            int(d["seq"]),
            int(d["shards"]),
            {int(k): str(v) for k, v in d["shard_blobs"].items()},
            list(d["archives"]),
            list(d["keys"]),
            list(d["live"]),
            {str(k): int(v) for k, v in d.get("retired", {}).items()},  # (absent before retention counted)
        )

    def blobs(self) -> set[str]:
        return set(self.shard_blobs.values()) | set(self.archives) | set(self.keys) | set(self.live)


@dataclass(slots=True)
class Unit:
    """Everything one batch changes about one transaction (or, with ``txn`` None, loose changes)."""

    txn: Transaction | None = None
    nodes: list[tuple[str, Node | None]] = field(default_factory=list)
    fences: list[tuple[str, int | None]] = field(default_factory=list)
    key: tuple[str, str] | None = None
    key_at: float | None = None  # when the key was bound (wall-clock seconds), for its TTL


def encode_unit(
    unit: Unit, logged: set[int], physical_queue: bool
) -> tuple[bytes, bytes | None, dict[str, Any]]:
    """One unit as JSON, the physical queue item it adds (None if none), and the unit as data.

    ``logged``: transactions whose action log and delta are already in the log (updated here: a record
    carries them once, when it first has a delta, or when it is final and was never logged)."""
    d: dict[str, Any] = {}
    queued = None
    t = unit.txn
    if t is not None:
        d["t"] = t.to_dict(actions=False)
        if t.final:
            was_logged = t.id in logged
            logged.discard(t.id)
            if t.actions and not was_logged:
                d["a"] = [a.to_dict() for a in t.actions]
        elif t.delta is not None and t.id not in logged:
            d["a"] = [a.to_dict() for a in t.actions]
            d["d"] = t.delta.to_dict()
            logged.add(t.id)
            if physical_queue and t.actions:
                queued = dumps(
                    {
                        "id": t.id,
                        "procedure": t.procedure,
                        "args": t.args,
                        "times": t.times,
                    }
                )
        if unit.key is not None:
            d["k"] = [*unit.key, unit.key_at] if unit.key_at is not None else list(unit.key)
    if unit.nodes:
        d["n"] = [[p] if n is None else [p, n.kind, n.attrs] for p, n in unit.nodes]
    if unit.fences:
        d["f"] = [[p, txn] for p, txn in unit.fences]
    return dumps(d), queued, d


def chunks(items: Iterable[bytes], limit: int) -> list[bytes]:
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


def blob_epoch(name: str) -> int:
    """The epoch in a blob or index name (``m3-<epoch>-...``, ``a-<epoch>-...``); large when unknown."""
    parts = name.split("-")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 1 << 62
