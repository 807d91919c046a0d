"""A real tropic API server for tests: uvicorn on a free loopback port, in a thread of the test process,
serving a controller on a generated datacenter with the sim driver (dependency injection, no globals)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tropic.api import AuditLog, TokenStore, create_app
from tropic.api.events import EventBroker
from tropic.api.server import HttpLimits, server_options
from tropic.drivers import SimDriver
from tropic.model import Model, project
from tropic.scenario import build_datacenter
from tropic.txn import Controller

VIEWER = "viewer-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
SECRETS = (VIEWER, OPERATOR, ADMIN)

HOST = "/compute/us-east/host-01"
IMAGE = "/storage/us-east/san-1/img-ubuntu"


def spawn_args(name: str, host: str = HOST, memory_mib: int = 512, vcpus: int = 1) -> dict[str, Any]:
    return {"host": host, "name": name, "image": IMAGE, "vcpus": vcpus, "memory_mib": memory_mib}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Server:
    url: str
    controller: Controller
    driver: SimDriver
    model: Model
    audit: AuditLog
    events: EventBroker
    _server: uvicorn.Server
    _thread: threading.Thread
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = OPERATOR, **kw: Any) -> httpx.Client:
        headers = auth(token) if token else {}
        c = httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **kw)
        self.clients.append(c)
        return c

    def wait_final(self, txn_id: int, timeout: float = 60.0) -> dict[str, Any]:
        c = self.client(VIEWER)
        deadline = time.monotonic() + timeout
        while True:
            d: dict[str, Any] = c.get(f"/v1/transactions/{txn_id}").json()
            if d["state"] in ("COMMITTED", "ABORTED", "FAILED"):
                return d
            assert time.monotonic() < deadline, f"transaction {txn_id} still {d['state']}"
            time.sleep(0.02)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.events.close()
        self._server.should_exit = True
        self._thread.join(15)
        self.controller.stop()
        self.audit.close()


def start_server(
    audit_path: Path | None = None,
    latency: float = 0.01,
    *,
    limits: HttpLimits | None = None,
    log_level: str = "warning",
    **app_kw: Any,
) -> Server:
    model = build_datacenter()
    driver = SimDriver(latency=latency)
    driver.load(project(model))
    controller = Controller(model, driver).start()
    tokens = TokenStore([("vera", VIEWER, "viewer"), ("otto", OPERATOR, "operator"), ("ada", ADMIN, "admin")])
    audit = AuditLog(audit_path, fsync=False)
    events = EventBroker(ping_s=0.5)
    app = create_app(controller, tokens, audit, events=events, **app_kw)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The options `tropic serve` runs with (timeouts, access-log redaction), on this socket.
    options = {**server_options(limits or HttpLimits()), "log_level": log_level}
    config = uvicorn.Config(app, timeout_graceful_shutdown=2, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    return Server(f"http://127.0.0.1:{port}", controller, driver, model, audit, events, server, thread)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- raw HTTP/1.1, for what an HTTP client library would not send (bad bytes, half requests) ----------------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_connection(url: str, timeout: float = 30.0) -> socket.socket:
    """A plain TCP connection to the server at ``url`` (generous timeout: a wait, never an ordering)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_response(sock: socket.socket) -> RawResponse:
    """One response (head and Content-Length body) from ``sock``."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the server closed the connection before answering; got {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("the server closed the connection in the middle of a body")
        rest += chunk
    return RawResponse(int(lines[0].split()[1]), headers, rest[:length])


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server still sends until it closes the connection (fails if it never does within
    the socket's timeout)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk
