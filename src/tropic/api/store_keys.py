"""Idempotency keys kept in the store, with their transactions: a client retrying a submission after the
server was restarted (or killed) gets the first transaction back, never a second one.

The key is written in the same commit as its transaction's first record (the store's
:meth:`~tropic.store.base.Store.bind_key`), scoped to the token that used it, with the request's
fingerprint and the time it was bound, so the rules of :class:`~tropic.api.idempotency.IdempotencyCache`
(a different request with the key is refused; the key lives ``ttl`` seconds from its first use) hold
across restarts. The store deletes expired keys in bounded passes as new ones are written
(:mod:`tropic.store.sqlite_keys`). The ZooKeeper store's keys are served the same way by
:class:`tropic.cluster.DurableKeys`, which also waits for a key whose record waits for a quorum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from tropic.api.idempotency import DEFAULT_TTL, IdempotencyCache, KeyReused
from tropic.records import key_id


@runtime_checkable
class KeyStore(Protocol):
    """A store that keeps idempotency keys with their transactions (the SQLite store)."""

    def lookup_key(self, kid: str) -> tuple[int, str] | None: ...

    def lookup_pending_key(self, kid: str) -> tuple[int, str] | None: ...

    def set_key_ttl(self, ttl: float, clock: Callable[[], float] = ...) -> None: ...

    def key_count(self) -> int: ...


class StoreKeys(IdempotencyCache):
    """The API's idempotency keys, read from and written to ``store`` (see the module docstring)."""

    blocking = True  # lookups read the store's file

    def __init__(
        self, store: KeyStore, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(ttl=ttl, clock=clock)
        self.store = store
        store.set_key_ttl(ttl, clock)

    def __bool__(self) -> bool:
        return True  # an empty store of keys is still the one to use

    def __len__(self) -> int:
        return self.store.key_count()

    def run(
        self, owner: str, key: str, fp: str, create: Callable[[tuple[str, str]], int]
    ) -> tuple[int, bool]:
        kid = key_id(owner, key)
        with self.locks.hold(kid):  # two concurrent retries with one key make one transaction
            # A key whose record is not written yet (its first try timed out waiting) is still bound to
            # its transaction: the store writes it with that record, so the retry gets that one.
            seen = self.store.lookup_key(kid) or self.store.lookup_pending_key(kid)
            if seen is not None:
                if seen[1] != fp:
                    raise KeyReused(seen[0])
                return seen[0], True
            return create((kid, fp)), False


def keys_for(store: object, ttl: float) -> IdempotencyCache:
    """The API's keys for ``store``: in the store when it keeps them, else in memory."""
    if isinstance(store, KeyStore):
        return StoreKeys(store, ttl=ttl)
    return IdempotencyCache(ttl=ttl)
