"""Idempotency keys for submissions: a client retrying after a timeout never creates a second transaction.

A key is scoped to the token that used it and remembers a fingerprint of the request, so reusing a key
for a *different* request is refused rather than silently answered with the wrong transaction. The map is
bounded (least recently used keys are forgotten first) and lives in memory: a key survives for as long
as the server runs and fewer than ``capacity`` newer keys have been used.

Only requests with the *same* key wait for each other (:class:`KeyLocks`): submissions with different keys
run concurrently and share the store's group commits.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tropic.records import key_id

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Remembered:
    txn_id: int
    fingerprint: str


def fingerprint(procedure: str, args: Mapping[str, Any]) -> str:
    body = json.dumps({"procedure": procedure, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class KeyReused(Exception):
    """The key was used earlier for a different request (carries the earlier transaction's id)."""

    def __init__(self, txn_id: int) -> None:
        super().__init__(txn_id)
        self.txn_id = txn_id


class KeyLocks:
    """One lock per key, held only while some thread uses that key: two requests with one key run one
    after the other, requests with different keys never wait for each other."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users = self._locks[key][1]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys in use right now (0 when no request holds or waits for one)."""
        with self._guard:
            return len(self._locks)


class IdempotencyCache:
    blocking = False  # whether run() may block on I/O (then the API calls it from a worker thread)

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._map: OrderedDict[tuple[str, str], Remembered] = OrderedDict()
        self._lock = threading.Lock()  # the map only (held for microseconds, never across a commit)
        self.locks = KeyLocks()

    def run(
        self, owner: str, key: str, fp: str, create: Callable[[tuple[str, str]], int]
    ) -> tuple[int, bool]:
        """The transaction for ``(owner, key)``: the remembered one (``replayed`` True) or a new one made
        by ``create(binding)`` (``binding``: the key's id and the fingerprint, for the store). The key's
        own lock, held across ``create``, makes two concurrent retries create one; other keys go on."""
        k = (owner, key)
        kid = key_id(owner, key)
        with self.locks.hold(kid):
            seen = self.lookup(k)
            if seen is not None:
                if seen.fingerprint != fp:
                    raise KeyReused(seen.txn_id)
                return seen.txn_id, True
            txn_id = create((kid, fp))
            self.remember(k, Remembered(txn_id, fp))
            return txn_id, False

    def lookup(self, k: tuple[str, str]) -> Remembered | None:
        with self._lock:
            seen = self._map.get(k)
            if seen is not None:
                self._map.move_to_end(k)
            return seen

    def remember(self, k: tuple[str, str], seen: Remembered) -> None:
        with self._lock:
            self._map[k] = seen
            while len(self._map) > self.capacity:
                self._map.popitem(last=False)

    def __len__(self) -> int:
        return len(self._map)
