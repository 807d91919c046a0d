"""Leader election among controller replicas: kazoo's Lock recipe on ``/election``.

Each replica queues an ephemeral sequential node whose data names it (and where its API is); the first in
line leads. A leader stays leader exactly as long as its node exists, i.e. as long as its ZooKeeper
session: the store checks the node in every commit (:meth:`tropic.store.zk.ZooKeeperStore.bind_election`),
so a deposed leader cannot write even before it notices.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import CancelledError, KazooException, NoNodeError
from kazoo.recipe.lock import Lock

from tropic.store.zk import Paths


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """What a replica announces in its election node."""

    name: str
    url: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"name": self.name, "url": self.url})

    @staticmethod
    def decode(data: bytes | str) -> LeaderInfo:
        try:
            d: Any = orjson.loads(data)
            return LeaderInfo(str(d["name"]), d.get("url"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return LeaderInfo(str(data))


class Election:
    """One candidacy: :meth:`campaign` blocks until this replica leads (or :meth:`cancel`)."""

    def __init__(self, client: KazooClient, me: LeaderInfo) -> None:
        self.client = client
        self.me = me
        self._lock = Lock(client, Paths.ELECTION, identifier=me.encode().decode())
        self._lost = threading.Event()

    def campaign(self) -> str:
        """Wait to lead; return the path of this replica's election node (what every commit checks).
        Raises kazoo's CancelledError after :meth:`cancel`."""
        self._lock.acquire(blocking=True)
        node = f"{self._lock.path}/{self._lock.node}"

        def watch(data: bytes | None, stat: Any, event: Any = None) -> bool:
            if stat is None:  # our node is gone: so is our leadership
                self._lost.set()
                return False
            return True

        self.client.DataWatch(node, watch)
        return node

    @property
    def node_gone(self) -> bool:
        return self._lost.is_set()

    def cancel(self) -> None:
        self._lock.cancel()

    def resign(self) -> None:
        """Give the leadership up (delete the election node) if the session still holds it."""
        with contextlib.suppress(KazooException, CancelledError, NoNodeError):
            self._lock.release()

    def leader(self) -> LeaderInfo | None:
        """The current leader (first in line), as announced; None when nobody campaigns."""
        with contextlib.suppress(KazooException):
            contenders = self._lock.contenders()
            if contenders:
                return LeaderInfo.decode(contenders[0])
        return None
