"""JSON encodings of the contract's records, as they travel on the client wire and sit in ZooKeeper.

Every record is its dataclass's fields as a JSON object (``ReplicaInfo(**json.loads(data))`` reads a
replica's node); a :class:`Snapshot`'s sessions map a client to ``[last seq, reply]``. Decoders raise
:class:`WireError` naming what is wrong, never a ``KeyError``/``TypeError``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from tropic.errors import TropicError
from tropic.ha.contract import LogEntry, ReplicaInfo, Reply, Request, Snapshot

__all__ = [
    "WireError",
    "decode_entry",
    "decode_info",
    "decode_reply",
    "decode_request",
    "decode_snapshot",
    "dumps",
    "encode",
]


class WireError(TropicError):
    """A record that is not what the contract says (malformed JSON, a missing or mistyped field)."""

    code = "ha_wire_error"


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def encode(record: LogEntry | ReplicaInfo | Snapshot | Request | Reply) -> bytes:
    if isinstance(record, Snapshot):
        return dumps(
            {
                "applied": record.applied,
                "state": record.state,
                "sessions": {c: [s, r] for c, (s, r) in record.sessions.items()},
            }
        )
    return dumps(asdict(record))


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise WireError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if name not in obj:
        raise WireError(f"{what} has no {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireError(f"{what}: {name!r} has the wrong type ({type(value).__name__})")
    return value


def _optional(obj: dict[str, Any], name: str, kind: type, default: Any, what: str) -> Any:
    return _field(obj, name, kind, what) if name in obj else default


def decode_entry(data: bytes | str) -> LogEntry:
    obj = _object(data, "log entry")
    return LogEntry(
        client=_field(obj, "client", str, "log entry"),
        seq=_field(obj, "seq", int, "log entry"),
        op=_field(obj, "op", dict, "log entry"),
    )


def decode_request(data: bytes | str) -> Request:
    obj = _object(data, "request")
    consistency = obj.get("consistency", "linearizable")
    if consistency not in ("linearizable", "local"):
        raise WireError(f"request: consistency must be 'linearizable' or 'local', not {consistency!r}")
    return Request(
        client=_field(obj, "client", str, "request"),
        seq=_field(obj, "seq", int, "request"),
        op=_field(obj, "op", dict, "request"),
        consistency=consistency,
        read=_optional(obj, "read", bool, False, "request"),
    )


def decode_reply(data: bytes | str) -> Reply:
    obj = _object(data, "reply")
    return Reply(
        client=_field(obj, "client", str, "reply"),
        seq=_field(obj, "seq", int, "reply"),
        ok=_field(obj, "ok", bool, "reply"),
        reply=obj.get("reply"),
        index=_optional(obj, "index", int, -1, "reply"),
        error=_optional(obj, "error", str, "", "reply"),
    )


def decode_info(data: bytes | str) -> ReplicaInfo:
    obj = _object(data, "replica info")
    state = obj.get("state", "catching-up")
    if state not in ("catching-up", "serving"):
        raise WireError(f"replica info: unknown state {state!r}")
    return ReplicaInfo(
        replica=_field(obj, "replica", str, "replica info"),
        address=_field(obj, "address", str, "replica info"),
        applied=_field(obj, "applied", int, "replica info"),
        host=_optional(obj, "host", str, "", "replica info"),
        pid=_optional(obj, "pid", int, 0, "replica info"),
        state=state,
    )


def decode_snapshot(data: bytes | str) -> Snapshot:
    obj = _object(data, "snapshot")
    sessions_raw = obj.get("sessions", {})
    if not isinstance(sessions_raw, dict):
        raise WireError("snapshot: 'sessions' must be an object")
    sessions: dict[str, tuple[int, Any]] = {}
    for client, pair in sessions_raw.items():
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int):
            raise WireError(f"snapshot: session of client {client!r} must be [seq, reply]")
        sessions[client] = (pair[0], pair[1])
    return Snapshot(
        applied=_field(obj, "applied", int, "snapshot"), state=obj.get("state"), sessions=sessions
    )
