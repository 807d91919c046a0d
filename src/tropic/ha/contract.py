"""What the parts of application HA share: ZooKeeper layout, wire formats and the client's interface.

**The program protocol** (an unmodified program, run by the replica wrapper): one JSON object per line on
stdin (a request's ``op``, exactly as the client sent it), one JSON object per line on stdout (its
reply), in order. The program must be deterministic: the same requests in the same order give the same
replies. Two optional control requests let the wrapper snapshot it; a program that answers anything
else to them (or an ``{"error": ...}``) runs without snapshots, so its log is kept whole:

* ``{"__tropic__": "snapshot"}`` -> ``{"state": <any JSON>}``;
* ``{"__tropic__": "restore", "state": <any JSON>}`` -> ``{"ok": true}``.

**ZooKeeper layout**, under the job's root ``ha_root(job)`` (inside the deployment's chroot):

* ``log/r-<seq:010d>``: persistent sequential nodes, one request each (:class:`LogEntry` JSON); the
  sequence number ZooKeeper assigns is the request's log index; Zab orders them totally;
* ``replicas/<replica>``: ephemeral, one per live replica (:class:`ReplicaInfo` JSON, updated as it
  applies), so a replica's death ends its session and its node;
* ``snapshots/<replica>``: the replica's newest snapshot (:class:`Snapshot` JSON, chunked when large);
* ``truncated``: the lowest log index still kept (entries below it were removed, every live replica
  having a snapshot at or above it).

**The client wire** (client <-> replica): newline-delimited JSON over TCP at the replica's ``address``:
a :class:`Request` in, a :class:`Reply` out. A request is acknowledged (``ok`` true) only once it is in
the log and applied by the replica that answers. ``(client, seq)`` identifies a request: a retry with the
same pair is applied once and answered with the first answer (the replicas keep each client's last
sequence number and reply as part of their replicated state and snapshots). A request marked ``read``
(it does not change the state) is, on a replica run with ``--read-path sync``, answered without an append:
the replica syncs with ZooKeeper, reads the log's child counter and answers once it has applied a
listing of the log with at least that counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tropic.errors import TropicError

HA_ROOT = "/ha"
LOG_PREFIX = "r-"  # log/r-0000000042
Consistency = Literal["linearizable", "local"]
# How a replica answers a linearizable read (a request marked ``read``): appended to the log like a write
# ("log"), or after a ZooKeeper sync() of the log and a wait until it has applied the log's tail ("sync").
ReadPath = Literal["log", "sync"]
READ_PATHS: tuple[ReadPath, ...] = ("log", "sync")
# The environment variable that sets the replica wrapper's --read-path default (the job driver starts
# replicas with the contract's command line: a controller's environment chooses for all its jobs).
READ_PATH_ENV = "TROPIC_HA_READ_PATH"


def ha_root(job: str) -> str:
    return f"{HA_ROOT}/{job}"


class HAUnavailable(TropicError):
    """No replica answered within the client's deadline (every retry timed out or was refused)."""

    code = "ha_unavailable"


@dataclass(frozen=True, slots=True)
class LogEntry:
    client: str
    seq: int
    op: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    replica: str  # the replica's name, e.g. "kv-1"
    address: str  # "host:port" of its client wire
    applied: int  # the highest log index it has applied (-1: none)
    host: str = ""  # the model's host path it runs on
    pid: int = 0
    state: Literal["catching-up", "serving"] = "catching-up"


@dataclass(frozen=True, slots=True)
class Snapshot:
    applied: int  # the state includes every log entry up to and including this index
    state: Any  # the program's snapshot (its ``{"state": ...}`` answer)
    sessions: dict[str, tuple[int, Any]] = field(default_factory=dict)  # client -> (last seq, its reply)


@dataclass(frozen=True, slots=True)
class Request:
    client: str
    seq: int
    op: dict[str, Any]
    consistency: Consistency = "linearizable"  # reads: ordered through the log (or a sync), or local
    # The client declares that ``op`` does not change the program's state (the wrapper cannot tell): a
    # linearizable read, which a replica on the "sync" read path answers without appending to the log.
    read: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    client: str
    seq: int
    ok: bool
    reply: Any = None  # the program's answer
    # the log index the request was applied at (-1: a local read; a read on the sync path: the index the
    # replica had applied when it answered, or a later one)
    index: int = -1
    error: str = ""  # why not ok (e.g. "catching up", "not serving"); the client then fails over


class Client(Protocol):
    """What ``tropic.ha.client.HAClient`` offers (and what the bench drives; an unreplicated baseline
    offers the same). ``call`` retries with the same ``(client, seq)`` across replicas until its deadline,
    then raises :class:`HAUnavailable`."""

    def call(
        self, op: dict[str, Any], *, consistency: Consistency = "linearizable", read: bool = False
    ) -> Any: ...

    def close(self) -> None: ...
