"""Idempotency keys for submissions: a client retrying after a timeout never creates a second transaction.

A key is scoped to the token that used it and remembers a fingerprint of the request, so reusing a key
for a *different* request is refused rather than silently answered with the wrong transaction. A key
lives ``ttl`` seconds from its first use (:data:`DEFAULT_TTL`, 24 h; ``tropic serve --idempotency-ttl``):
a retry within it gets the first transaction back, after it the key is new. This cache is the in-memory
one (a ``memory://`` store); the SQLite and ZooKeeper stores keep keys with their transactions
(:mod:`tropic.api.store_keys`, :class:`tropic.cluster.DurableKeys`). The map is bounded twice: expired
keys are dropped in small passes as new ones come, and beyond ``capacity`` keys the oldest are forgotten
first.

Only requests with the *same* key wait for each other (:class:`KeyLocks`): submissions with different keys
run concurrently and share the store's group commits.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tropic.records import key_id

MAX_KEY_LENGTH = 200
DEFAULT_TTL = 24 * 3600.0  # seconds a key is remembered from its first use
EXPIRE_BATCH = 100  # expired keys dropped at most per new key (a pass never holds the lock long)
_TTL = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_ttl(text: str) -> float:
    """``24h``, ``90m``, ``3600`` (seconds), ``7d``...: seconds, or one clear ConfigError."""
    from tropic.errors import ConfigError

    m = _TTL.match(text.strip())
    if m is None:
        raise ConfigError(f"idempotency TTL {text!r} is malformed: expected e.g. 24h, 90m, 3600s, 7d")
    ttl = float(m.group(1)) * _TTL_UNITS[m.group(2)]
    if ttl <= 0:
        raise ConfigError(f"idempotency TTL {text!r} would remember no key; give a positive duration")
    return ttl


@dataclass(frozen=True, slots=True)
class Remembered:
    txn_id: int
    fingerprint: str
    at: float = 0.0  # when the key was first used (the cache's clock)


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

    def __init__(
        self,
        capacity: int = 10_000,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._map: OrderedDict[tuple[str, str], Remembered] = OrderedDict()  # oldest first
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
            self.remember(k, Remembered(txn_id, fp, self.clock()))
            return txn_id, False

    def lookup(self, k: tuple[str, str]) -> Remembered | None:
        """The key's transaction, or None (never used, forgotten, or older than the TTL)."""
        with self._lock:
            seen = self._map.get(k)
            if seen is not None and self.clock() - seen.at >= self.ttl:
                del self._map[k]
                return None
            return seen

    def remember(self, k: tuple[str, str], seen: Remembered) -> None:
        with self._lock:
            self._map.pop(k, None)  # a key used again after its TTL moves to the end
            self._map[k] = seen
            self._expire(EXPIRE_BATCH)
            while len(self._map) > self.capacity:
                self._map.popitem(last=False)

    def expire(self, limit: int = EXPIRE_BATCH) -> int:
        """Drop up to ``limit`` expired keys (the oldest first); how many were dropped."""
        with self._lock:
            return self._expire(limit)

    def _expire(self, limit: int) -> int:
        cutoff = self.clock() - self.ttl
        dropped = 0
        while self._map and dropped < limit:
            k, oldest = next(iter(self._map.items()))
            if oldest.at > cutoff:
                break
            del self._map[k]
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._map)
