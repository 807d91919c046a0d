"""The HTTP listener's limits: idle and half-sent connections are closed after a bounded time, answers are
not, and a token put in the query string never reaches the access log.

The server here runs with short timeouts; the test waits for the server to act with a generous socket
timeout (a deadline, not an ordering), so a slow machine only makes it slower, never red.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_harness import (
    OPERATOR,
    VIEWER,
    Server,
    closed_by_server,
    raw_connection,
    read_response,
    spawn_args,
    start_server,
)

from tropic.api.server import REDACTED, HttpLimits, redact_target
from tropic.service.wiring import ServiceConfig

LIMITS = HttpLimits(keep_alive_s=0.3, read_timeout_s=0.6)
SECRET = "query-string-secret-0123456789abcdef"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("audit") / "audit.jsonl", limits=LIMITS, log_level="info")
    yield s
    s.stop()


def test_a_connection_that_sends_nothing_is_closed(timed: Server) -> None:
    with raw_connection(timed.url) as sock:
        assert closed_by_server(sock) == b""


def test_a_half_sent_request_head_gets_408_and_is_closed(timed: Server) -> None:
    with raw_connection(timed.url) as sock:
        sock.sendall(
            f"GET /v1/whoami HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {VIEWER}\r\n".encode()
        )
        r = read_response(sock)
        assert r.status == 408 and r.json()["error"]["code"] == "request_timeout"
        assert closed_by_server(sock) == b""


def test_a_half_sent_body_gets_408_and_is_closed_and_nothing_is_submitted(timed: Server) -> None:
    before = len(timed.controller.transactions())
    body = b'{"procedure": "spawn_vm", "args": {"name": "half"'
    with raw_connection(timed.url) as sock:
        sock.sendall(
            (
                f"POST /v1/transactions HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {OPERATOR}\r\n"
                "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
            ).encode()
            + body
        )
        r = read_response(sock)
        assert r.status == 408
        assert closed_by_server(sock) == b""
    assert len(timed.controller.transactions()) == before


def test_a_slow_drip_does_not_extend_the_deadline(timed: Server) -> None:
    """One byte now and then keeps no connection open: the deadline runs from the request's first byte."""
    with raw_connection(timed.url) as sock:
        sock.sendall(b"G")
        for ch in b"ET /v1/whoami HTTP/1.1\r\nHost: t":
            try:
                sock.sendall(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                break
            ready = closed_by_server_within(sock, LIMITS.read_timeout_s / 4)
            if ready is not None:
                assert b"408" in ready
                return
        assert b"408" in closed_by_server(sock)


def closed_by_server_within(sock: socket.socket, seconds: float) -> bytes | None:
    if not select.select([sock], [], [], seconds)[0]:
        return None
    return closed_by_server(sock)


def test_an_answer_that_takes_longer_than_the_read_timeout_is_not_cut(timed: Server) -> None:
    """Only reading a request is bounded: an event stream outlives every deadline of the listener."""
    with raw_connection(timed.url) as sock:
        sock.sendall(
            f"GET /v1/events HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {VIEWER}\r\n\r\n".encode()
        )
        got = b""
        # The broker pings every 0.5 s: wait for enough pings to outlast both deadlines several times.
        while got.count(b": ping") < 4:
            chunk = sock.recv(65536)
            assert chunk, "the event stream was cut"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")


def test_a_query_string_token_is_not_in_the_access_log(timed: Server) -> None:
    captured = Captured()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(captured)
    try:
        c = timed.client(None)
        c.get("/v1/whoami", params={"token": SECRET})
        c.get(
            "/v1/transactions",
            params={"access_token": SECRET, "limit": 5},
            headers={"Authorization": f"Bearer {VIEWER}"},
        )
        timed.client(OPERATOR).post(
            "/v1/transactions",
            params={"api_key": SECRET},
            json={"procedure": "spawn_vm", "args": spawn_args("q1")},
        )
    finally:
        access.removeHandler(captured)
    lines = [line for line in captured.lines if "/v1/" in line]
    assert len(lines) == 3, captured.lines
    assert not any(SECRET in line for line in lines)
    assert f"token={REDACTED}" in lines[0] and "limit=5" in lines[1]


def test_redaction_keeps_the_documented_parameters() -> None:
    assert (
        redact_target("/v1/transactions?state=COMMITTED&limit=5")
        == "/v1/transactions?state=COMMITTED&limit=5"
    )
    assert redact_target(f"/v1/x?token={SECRET}&depth=2") == f"/v1/x?token={REDACTED}&depth=2"
    assert redact_target(f"/v1/x?a=1&{SECRET}") == f"/v1/x?a={REDACTED}&{REDACTED}"  # a bare secret
    assert redact_target(f"/v1/x?{SECRET}=1") == f"/v1/x?{REDACTED}"  # a secret as a name
    assert redact_target("/v1/x?t=%ZZ&&depth=1") == f"/v1/x?t={REDACTED}&depth=1"
    assert redact_target("/healthz") == "/healthz"


def test_tropic_serve_runs_with_these_limits(tmp_path: Path) -> None:
    """The options `tropic serve` passes uvicorn carry the timeouts and the redacting access log."""
    from tropic.api import AuditLog, TokenStore

    audit = AuditLog(tmp_path / "audit.jsonl")
    options = ServiceConfig(tokens=TokenStore(), audit=audit).uvicorn_options()
    audit.close()
    assert options["timeout_keep_alive"] == HttpLimits().keep_alive_s
    assert options["http"].read_timeout == HttpLimits().read_timeout_s
    assert options["h11_max_incomplete_event_size"] == HttpLimits().max_head_bytes
    assert options["log_config"]["loggers"]["uvicorn.access"]["filters"] == ["tropic_redact_query"]


# Last in the file: starting another server reconfigures uvicorn's process-wide loggers, which the
# access-log test above reads.
@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose keep-alive outlasts any pause a loaded machine puts between two requests."""
    s = start_server(
        tmp_path_factory.mktemp("audit") / "audit.jsonl",
        limits=HttpLimits(keep_alive_s=60, read_timeout_s=60),
    )
    yield s
    s.stop()


def test_keep_alive_serves_several_requests(patient: Server) -> None:
    with raw_connection(patient.url) as sock:
        for _ in range(3):
            sock.sendall(
                f"GET /v1/whoami HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {VIEWER}\r\n\r\n".encode()
            )
            assert read_response(sock).status == 200
