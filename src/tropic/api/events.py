"""The live event stream: transaction state changes as server-sent events.

The controller calls :meth:`EventBroker.publish` on its logical thread after each durable state change;
that must not block, so it only hands the event to the server's event loop (``call_soon_threadsafe``).
Everything else happens on the loop: numbering, a bounded history for ``Last-Event-ID`` resumption, and
one bounded queue per subscriber. A subscriber that falls too far behind gets a ``resync`` event (reload
your view) instead of unbounded memory growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_CLOSE: Any = object()


@dataclass(slots=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.seq}\nevent: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(slots=True, eq=False)
class Subscription:
    queue: asyncio.Queue[Any]
    txn: int | None = None
    overflowed: bool = False
    backlog: list[Event] = field(default_factory=list)
    resync: bool = False


class EventBroker:
    """Fans controller events out to SSE subscribers of one server (one event loop)."""

    def __init__(self, *, history: int = 1000, queue_size: int = 1000, ping_s: float = 15.0) -> None:
        self.ping_s = ping_s
        self.queue_size = queue_size
        self._history: deque[Event] = deque(maxlen=history)
        self._seq = 0
        self._subs: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # --- wiring ------------------------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = False

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Thread-safe and non-blocking: called on the controller's logical thread."""
        loop = self._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: the server is gone
            loop.call_soon_threadsafe(self._deliver, kind, data)

    def close(self) -> None:
        """End every open stream (server shutdown). Thread-safe."""
        loop = self._loop
        if loop is None or self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._close_all)

    # --- on the loop ---------------------------------------------------------------------------------------
    def _deliver(self, kind: str, data: dict[str, Any]) -> None:
        self._seq += 1
        ev = Event(self._seq, kind, data)
        self._history.append(ev)
        for sub in self._subs:
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                sub.overflowed = True

    def _close_all(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(_CLOSE)
            sub.overflowed = True  # nothing more is queued after the close marker

    @property
    def seq(self) -> int:
        return self._seq

    def subscribe(self, *, last_id: int | None = None, txn: int | None = None) -> Subscription:
        """Register a subscriber (call on the loop). With ``last_id``, events after it are replayed from
        the history, or the subscriber is told to resync when they are no longer there."""
        sub = Subscription(asyncio.Queue(self.queue_size), txn)
        if last_id is not None and last_id < self._seq:
            oldest = self._history[0].seq if self._history else self._seq + 1
            if last_id + 1 < oldest:
                sub.resync = True
            else:
                sub.backlog = [e for e in self._history if e.seq > last_id]
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def stream(self, sub: Subscription) -> AsyncIterator[bytes]:
        """The SSE byte stream of one subscriber, until the client leaves or the server stops."""
        try:
            yield f"retry: 2000\n: tropic events, seq {self._seq}\n\n".encode()
            if sub.resync:
                yield Event(self._seq, "resync", {"reason": "missed events"}).encode()
            for ev in sub.backlog:
                if self._wanted(sub, ev):
                    yield ev.encode()
            sub.backlog = []
            while True:
                if self._closed and sub.queue.empty():
                    return
                try:
                    ev = await asyncio.wait_for(sub.queue.get(), timeout=self.ping_s)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if ev is _CLOSE:
                    return
                if self._wanted(sub, ev):
                    yield ev.encode()
                if sub.overflowed and sub.queue.empty() and not self._closed:
                    # Too slow a reader: tell it to reload, then carry on from now.
                    sub.overflowed = False
                    yield Event(self._seq, "resync", {"reason": "the client fell behind"}).encode()
        finally:
            self.unsubscribe(sub)

    @staticmethod
    def _wanted(sub: Subscription, ev: Event) -> bool:
        if sub.txn is None:
            return True
        txn = ev.data.get("txn")
        return isinstance(txn, dict) and txn.get("id") == sub.txn
