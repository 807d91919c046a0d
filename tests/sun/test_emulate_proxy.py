"""The delay proxy of `tropic sun --emulate`: a ping through a route takes the route's round trip, a
stream is delayed once (not once per chunk), and a route's delay changes at run time."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from tropic.sun.emulate.proxy import DelayProxy, measure_rtt_ms


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


@pytest.fixture
def proxy() -> Iterator[DelayProxy]:
    with DelayProxy() as p:
        yield p


def test_a_ping_through_a_route_takes_its_round_trip(proxy: DelayProxy, echo_port: int) -> None:
    route = proxy.add_route("a->b", echo_port, 0.040)  # 80 ms round trip
    pings = measure_rtt_ms(route.listen_port, pings=10)
    # on time on average (the proxy wakes up early by its timer's usual lateness, never by more than half
    # the delay); slower only by the machine's scheduling
    assert min(pings) >= 80.0 * 0.5
    assert 80.0 * 0.9 <= statistics.median(pings) <= 80.0 + 60.0
    assert route.connections == 1


def test_a_stream_is_delayed_once_not_per_chunk(proxy: DelayProxy, echo_port: int) -> None:
    route = proxy.add_route("stream", echo_port, 0.050)
    chunks = 20
    with socket.create_connection(("127.0.0.1", route.listen_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sent = 0.0
        for _ in range(chunks):
            s.sendall(b"x")
            sent = time.perf_counter() - start  # the last chunk's send
            time.sleep(0.005)
        got = b""
        while len(got) < chunks:
            got += s.recv(100)
        elapsed = time.perf_counter() - start
    assert got == b"x" * chunks  # in order, nothing lost
    # head-of-line blow-up would cost 20 x 100 ms; pipelined, the stream ends one round trip after sending
    assert elapsed >= sent + 0.100 * 0.5
    assert elapsed < sent + 0.100 + 1.0


def test_a_route_is_reconfigured_at_run_time(proxy: DelayProxy, echo_port: int) -> None:
    route = proxy.add_route("moving", echo_port, 0.060)
    with socket.create_connection(("127.0.0.1", route.listen_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ping() -> float:
            start = time.perf_counter()
            s.sendall(b"p")
            assert s.recv(1) == b"p"
            return (time.perf_counter() - start) * 1000.0

        before = [ping() for _ in range(5)]
        proxy.set_delay("moving", 0.010)  # the same connection: a member moved closer
        after = [ping() for _ in range(5)]
    assert min(before) >= 120.0 * 0.5
    assert min(after) >= 20.0 * 0.5
    assert statistics.median(after) < statistics.median(before) - 50.0
    with pytest.raises(ValueError, match="moving"):
        proxy.set_delay("moving", -1.0)
    with pytest.raises(ValueError, match="exists already"):
        proxy.add_route("moving", echo_port, 0.0)
