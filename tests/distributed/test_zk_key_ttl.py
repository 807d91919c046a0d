"""Durable idempotency keys (replicated mode) live a TTL: a retry within it gets the first transaction on
any replica, after it the key is new, and expired keys leave memory and ZooKeeper, so under a constant
load the number of keys stays bounded. Time is an injected clock; the ensemble is real."""

from __future__ import annotations

import time
from typing import Any

from core.helpers import small_dc
from tropic.cluster.gate import DurableKeys
from tropic.model import STANDARD
from tropic.records import key_id
from tropic.store.zk import Paths, ZooKeeperStore
from tropic.store.zk_layout import KEEP_KEY_CHUNKS
from tropic.txn import State, Transaction

TTL = 20.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _key_chunks(zk_client: Any) -> list[str]:
    return [n for n in zk_client.get_children(Paths.DATA) if n.startswith("k-")]


def test_keys_expire_from_memory_and_zookeeper_under_a_constant_load(zk_uri: str, zk_client: Any) -> None:
    clock = Clock()
    store = ZooKeeperStore(zk_uri, snapshot_entries=3)
    store.init_model(small_dc())
    keys = DurableKeys(store, ttl=TTL, clock=clock)
    made: list[int] = []

    def create(binding: tuple[str, str]) -> int:
        txn = len(made) + 1
        made.append(txn)
        store.bind_key(txn, *binding)
        t = Transaction(txn, "spawn_vm", {"name": f"t{txn}"})
        t.times[State.SUBMITTED.value] = clock()
        store.put_txn(t)
        store.commit()
        return txn

    chunks, in_memory = [], []
    for i in range(120):  # one keyed submission a second, a snapshot every 3 log entries
        assert keys.run("ops", f"k{i}", "fp", create) == (i + 1, False)
        store.wait_background()
        chunks.append(len(_key_chunks(zk_client)))
        in_memory.append(len(store.keys))
        clock.now += 1.0
    assert store.snapshots >= 30
    # Chunks of 3 keys live TTL seconds (plus one snapshot before they are deleted): far below the
    # KEEP_KEY_CHUNKS cap that bounded them before keys expired.
    assert max(chunks[60:]) <= TTL / 3 + 3 < KEEP_KEY_CHUNKS
    assert max(in_memory) <= TTL + 1

    # a retry within the TTL gets the first transaction, after it the key is new
    assert keys.run("ops", "k119", "fp", create) == (120, True)
    assert keys.run("ops", f"k{119 - int(TTL) + 2}", "fp", create) == (119 - int(TTL) + 3, True)
    assert keys.run("ops", "k10", "fp", create) == (121, False)
    assert keys.run("ops", "k10", "fp", create) == (121, True)

    # another replica taking over agrees (the time of each key is stored with it)
    store.wait_background()
    second = ZooKeeperStore(zk_uri, snapshot_entries=3)
    second.set_key_ttl(TTL, clock)
    second.restore(STANDARD)
    assert second.lookup_key(key_id("ops", "k119")) == (120, "fp")
    assert second.lookup_key(key_id("ops", "k10")) == (121, "fp")
    assert second.lookup_key(key_id("ops", "k50")) is None
    clock.now += TTL
    assert second.lookup_key(key_id("ops", "k119")) is None
    second.close()
    store.close()
