"""Idempotency keys for submissions: a client retrying after a timeout never creates a second transaction.

A key is scoped to the token that used it and remembers a fingerprint of the request, so reusing a key
for a *different* request is refused rather than silently answered with the wrong transaction. The map is
bounded (least recently used keys are forgotten first) and lives in memory: a key survives for as long
as the server runs and fewer than ``capacity`` newer keys have been used.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
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


class IdempotencyCache:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._map: OrderedDict[tuple[str, str], Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def run(
        self, owner: str, key: str, fp: str, create: Callable[[tuple[str, str]], int]
    ) -> tuple[int, bool]:
        """The transaction for ``(owner, key)``: the remembered one (``replayed`` True) or a new one made
        by ``create(binding)`` (``binding``: the key's id and the fingerprint, for the store). Holding the
        lock across ``create`` makes two concurrent retries create one."""
        k = (owner, key)
        with self._lock:
            seen = self._map.get(k)
            if seen is not None:
                if seen.fingerprint != fp:
                    raise KeyReused(seen.txn_id)
                self._map.move_to_end(k)
                return seen.txn_id, True
            txn_id = create((key_id(owner, key), fp))
            self._map[k] = Remembered(txn_id, fp)
            while len(self._map) > self.capacity:
                self._map.popitem(last=False)
            return txn_id, False

    def __len__(self) -> int:
        return len(self._map)
