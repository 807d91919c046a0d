"""What a replica serves over HTTP: the leader's API while it leads, a clear 503 while it stands by; and
idempotency keys that survive a failover.

The :class:`LeaderGate` is the ASGI app uvicorn runs for the whole life of the process. When the replica
becomes leader it builds the API app for its new controller (:func:`tropic.api.app.create_app`), runs that
app's lifespan, and routes requests to it; when it loses the leadership it routes them nowhere again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

import orjson

from tropic.api.idempotency import DEFAULT_TTL, IdempotencyCache, KeyReused
from tropic.records import key_id
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import ZooKeeperUnavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


class _Lifespan:
    """Runs an inner app's lifespan protocol on the server's event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def receive() -> Message:
            return await self.inbox.get()

        async def send(message: Message) -> None:
            if message["type"].startswith("lifespan.startup"):
                self.started.set()

        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, receive, send))
        await self.inbox.put({"type": "lifespan.startup"})
        await asyncio.wait_for(self.started.wait(), 30)

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)


class LeaderGate:
    """The ASGI app of a replica (see the module docstring). ``standby()`` says who leads, for the 503."""

    def __init__(self, standby: Callable[[], str]) -> None:
        self.standby = standby
        self._app: ASGIApp | None = None
        self._life: _Lifespan | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self._app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body: dict[str, Any]
        if scope.get("path") == "/healthz":
            body = {"status": "standby", "detail": self.standby()}
        else:
            body = {"error": {"code": "not_leader", "message": self.standby()}}
        data = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._drop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(self, app: ASGIApp) -> None:
        await self._drop()
        life = _Lifespan(app)
        await life.start()
        self._life = life
        self._app = app

    async def _drop(self) -> None:
        self._app = None
        life, self._life = self._life, None
        if life is not None:
            await life.stop()

    def _run(self, coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
        if not self._ready.wait(timeout) or self._loop is None:
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def lead(self, app: ASGIApp) -> None:
        """Serve ``app`` from now on (call from any thread but the server's)."""
        self._run(self._serve(app))

    def step_down(self) -> None:
        """Stop serving the leader's app (its lifespan ends: event streams close)."""
        self._app = None
        loop = self._loop
        if loop is None or not loop.is_running():
            return  # the server is shutting down: its own lifespan shutdown ends the app's
        with contextlib.suppress(Exception):  # the loop went away meanwhile: nothing left to serve
            self._run(self._drop(), timeout=10.0)


class DurableKeys(IdempotencyCache):
    """Idempotency keys kept in the ZooKeeper store with their transaction (same commit): a client that
    retries a submission on another replica after a failover gets the first transaction back. A key lives
    ``ttl`` seconds of ``clock`` (wall-clock time, stored with the key) from its first use; expired keys
    leave memory and ZooKeeper in bounded passes (:mod:`tropic.store.zk_keys`)."""

    blocking = True  # lookups read ZooKeeper

    def __init__(
        self, store: ZooKeeperStore, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self.store = store
        store.set_key_ttl(ttl, clock)
        self.pending_wait_s = 30.0  # how long a retry waits for its first try's record to be stored

    def __bool__(self) -> bool:
        # create_app picks ``idempotency or IdempotencyCache()``: an empty cache must not read as "none"
        return True

    def __len__(self) -> int:
        return len(self.store.keys)

    def _await_pending(self, kid: str, fp: str) -> tuple[int, str] | None:
        """A retry of a submission whose first record is still waiting for ZooKeeper (it was refused
        with 503 while the quorum was away) gets that transaction once it is stored, never a second one."""
        pending = self.store.lookup_pending_key(kid)
        if pending is None or pending[1] != fp:
            return pending
        deadline = time.monotonic() + self.pending_wait_s
        while time.monotonic() < deadline:
            seen = self.store.lookup_key(kid)
            if seen is not None:
                return seen
            time.sleep(0.01)
        raise ZooKeeperUnavailable(
            f"transaction {pending[0]}, made for this Idempotency-Key, is not stored yet: ZooKeeper at "
            f"{self.store.hosts} has not confirmed it within {self.pending_wait_s:g} s; "
            "retry with the same key",
            hosts=self.store.hosts,
        )

    def run(
        self, owner: str, key: str, fp: str, create: Callable[[tuple[str, str]], int]
    ) -> tuple[int, bool]:
        kid = key_id(owner, key)
        with self.locks.hold(kid):  # two concurrent retries with one key make one transaction
            seen = self.store.lookup_key(kid) or self._await_pending(kid, fp)
            if seen is not None:
                if seen[1] != fp:
                    raise KeyReused(seen[0])
                return seen[0], True
            return create((kid, fp)), False
