"""A delay proxy on loopback: the wide area of an emulated run (this kernel has no netem).

Each :class:`Route` is one listening port on 127.0.0.1 forwarding to one target port; every connection
accepted on it is relayed in both directions, each chunk held ``delay_s`` (a one-way delay, half the
route's round trip) after it was read. Chunks are released in order and independently of each other: a
chunk read while earlier ones wait is not delayed by their wait (no head-of-line blow-up), so a stream
through the route sees the route's latency, not a multiple of it. A route's delay can change at run time
(a member that migrates changes its region): chunks read after the change take the new delay, never
overtaking the ones before them.

The proxy runs an asyncio loop in a daemon thread of its own; :meth:`DelayProxy.add_route` and
:meth:`DelayProxy.set_delay` are called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DelayProxy", "Route", "measure_rtt_ms"]

CHUNK = 65536


@dataclass
class Route:
    """One listening port relaying to ``target`` with a one-way delay of ``delay_s`` each way."""

    key: Hashable
    listen_port: int
    target_port: int
    delay_s: float
    connections: int = 0  # accepted so far
    _server: asyncio.Server | None = field(default=None, repr=False)


class DelayProxy:
    """Delayed TCP relays on 127.0.0.1, one per :class:`Route`; see the module docstring.

    ``lateness_s`` is how late the loop's timer fires on this machine (a moving average of what it
    observes); a held chunk is released that much before its due time (at most half its delay), so that
    chunks leave on time on average rather than always late (on a loaded machine, ~1 ms per hop).
    """

    MAX_LATENESS_S = 0.005

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._routes: dict[Hashable, Route] = {}
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lateness_s = 0.0
        self._thread = threading.Thread(target=self._serve, name="delay-proxy", daemon=True)
        self._thread.start()

    # --- public API (any thread) ------------------------------------------------------------------
    def add_route(self, key: Hashable, target_port: int, delay_s: float) -> Route:
        """Listen on a fresh port relaying to ``target_port`` with ``delay_s`` each way; returns it."""
        if delay_s < 0:
            raise ValueError(f"route {key!r}: a delay must be >= 0, not {delay_s}")
        if key in self._routes:
            raise ValueError(f"route {key!r} exists already")
        route = Route(key=key, listen_port=0, target_port=target_port, delay_s=delay_s)
        future = asyncio.run_coroutine_threadsafe(self._listen(route), self._loop)
        future.result(timeout=10)
        self._routes[key] = route
        return route

    def route(self, key: Hashable) -> Route:
        return self._routes[key]

    @property
    def routes(self) -> dict[Hashable, Route]:
        return dict(self._routes)

    def set_delay(self, key: Hashable, delay_s: float) -> None:
        """Change a route's one-way delay; chunks read from now on take it."""
        if delay_s < 0:
            raise ValueError(f"route {key!r}: a delay must be >= 0, not {delay_s}")
        self._routes[key].delay_s = delay_s  # one attribute store: atomic for the loop's thread

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the loop's thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _listen(self, route: Route) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            route.connections += 1
            task = asyncio.current_task()
            if task is not None:  # cancelled by close() like the pipes
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            try:
                await self._relay(route, reader, writer)
            except asyncio.CancelledError:  # close(): end quietly (streams asks a handler's exception)
                writer.close()

        server = await asyncio.start_server(accept, self.host, 0)
        route._server = server
        route.listen_port = server.sockets[0].getsockname()[1]

    async def _relay(self, route: Route, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, route.target_port)
        except OSError:
            down_w.close()
            return
        _nodelay(down_w)
        _nodelay(up_w)
        both = [
            asyncio.ensure_future(self._pipe(route, down_r, up_w)),
            asyncio.ensure_future(self._pipe(route, up_r, down_w)),
        ]
        for task in both:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        # One side closed: let the other deliver what it holds, then close both ends.
        await asyncio.wait(both, timeout=max(1.0, 4 * route.delay_s))
        for task in both:
            task.cancel()
        for w in (down_w, up_w):
            w.close()

    async def _pipe(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Relay one direction: a reader stamps each chunk with its due time, a sender releases it then."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                # wake up early by the timer's usual lateness (at most half the delay), so that chunks
                # leave on time on average
                target = due - min(self.lateness_s, 0.5 * route.delay_s)
                wait = target - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    late = loop.time() - target
                    self.lateness_s = min(self.MAX_LATENESS_S, max(0.0, 0.9 * self.lateness_s + 0.1 * late))
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()

        sender = asyncio.ensure_future(send())
        last_due = 0.0
        try:
            while True:
                data = await reader.read(CHUNK)
                # in order: a shortened delay never lets a chunk overtake the one before it
                last_due = max(loop.time() + route.delay_s, last_due)
                await queue.put((last_due, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()

    async def _shutdown(self) -> None:
        for route in self._routes.values():
            if route._server is not None:
                route._server.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def measure_rtt_ms(
    port: int, *, pings: int = 10, host: str = "127.0.0.1", timeout: float = 10.0
) -> list[float]:
    """Round trips (ms) of one-byte pings to an echo server behind ``port`` (for the proxy's own check)."""
    out: list[float] = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(pings):
            start = time.perf_counter()
            s.sendall(b"p")
            if not s.recv(1):
                raise ConnectionError(f"the echo behind port {port} closed the connection")
            out.append((time.perf_counter() - start) * 1000.0)
    return out
