"""How the API is served over HTTP: the uvicorn options a listener reachable by strangers needs.

* **Connection timeouts.** uvicorn closes a keep-alive connection that stays idle after a response
  (``timeout_keep_alive``), but waits forever for a new connection's first request, and for the rest of
  a request once its first byte has come. :class:`TimedH11Protocol` bounds both: a connection that sends
  nothing is closed after the keep-alive timeout, and one request (head and body) must arrive within
  ``read_timeout`` seconds of its first byte, or the client gets a 408 and the connection is closed.
  Answering takes as long as it takes (a repair waits, an event stream never ends): only reading the
  request is bounded. The request head is also bounded in size (``h11_max_incomplete_event_size``).
* **No secret in the access log.** uvicorn's access log prints the request target with its query string;
  a client that puts its token there (``?token=...``; the API only takes it in the ``Authorization``
  header) would leave it in the log. :class:`RedactQuery` keeps only the values of the API's documented
  query parameters, which hold no secret.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote_plus

import h11
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from tropic.api.errors import body

# The query parameters the API documents (tropic.api.app): their values are plain filters, never secrets.
LOGGED_QUERY_PARAMETERS = frozenset({"before", "depth", "limit", "path", "procedure", "scan", "state", "txn"})
REDACTED = "[redacted]"
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,19}")
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Seconds a connection may stay idle before a request and may take to send one; head size in bytes."""

    keep_alive_s: float = 5.0
    read_timeout_s: float = READ_TIMEOUT_S
    max_head_bytes: int = 16 * 1024


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for a connection's first request and for reading
    every request (see the module docstring). A subclass per deadline: :func:`timed_protocol`."""

    read_timeout: ClassVar[float] = READ_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        super().connection_lost(exc)

    # --- the deadlines ---------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Arm the deadline that fits the connection's state now: reading a request (its first byte has
        come, its end has not), or waiting for one (idle)."""
        if self.transport.is_closing():
            return
        theirs = self.conn.their_state
        if theirs is h11.SEND_BODY or (theirs is h11.IDLE and self.conn.trailing_data[0]):
            if self._read_deadline is None:
                self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)
            return
        self._cancel_read_deadline()
        if theirs is h11.IDLE and self.timeout_keep_alive_task is None:
            # uvicorn arms this only after a response; a connection that never asks gets the same time.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle if self.conn.their_state is h11.SEND_BODY else None
        if cycle is None or not cycle.response_started:
            # Written directly, not through h11: the connection ends here whatever state it was in.
            payload = json.dumps(
                body("request_timeout", f"the request was not received within {self.read_timeout:g} s")
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
        if cycle is not None:
            # The application waits for the rest of the body: it gets a disconnect, and what it would
            # still send is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def timed_protocol(read_timeout_s: float) -> type[TimedH11Protocol]:
    """The protocol class for uvicorn's ``http`` option, reading each request within ``read_timeout_s``."""
    if read_timeout_s <= 0:
        raise ValueError(f"the read timeout must be positive, got {read_timeout_s}")
    return type("TimedH11Protocol", (TimedH11Protocol,), {"read_timeout": read_timeout_s})


class RedactQuery(logging.Filter):
    """Replace the values of undocumented query parameters in uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def redact_target(target: str) -> str:
    """``target`` (a path with its query string) with the value of every undocumented parameter redacted,
    and its name too unless it is a short plain word (a bare ``?<token>`` is a secret as a name)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    shown: list[str] = []
    for item in query.split("&"):
        raw_name, eq, _ = item.partition("=")
        name = unquote_plus(raw_name)
        if eq and name in LOGGED_QUERY_PARAMETERS:
            shown.append(item)
        elif eq and _PLAIN_NAME.fullmatch(name):
            shown.append(f"{raw_name}={REDACTED}")
        elif item:
            shown.append(REDACTED)
    return f"{path}?{'&'.join(shown)}"


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with :class:`RedactQuery` on the access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["tropic_redact_query"] = {"()": RedactQuery}
    config["loggers"]["uvicorn.access"]["filters"] = ["tropic_redact_query"]
    return config


def server_options(limits: HttpLimits = HttpLimits()) -> dict[str, Any]:
    """The uvicorn options of every tropic API server: the timeouts, limits and access log above."""
    return {
        "http": timed_protocol(limits.read_timeout_s),
        "timeout_keep_alive": limits.keep_alive_s,
        "h11_max_incomplete_event_size": limits.max_head_bytes,
        "log_config": log_config(),
        "server_header": False,
    }
