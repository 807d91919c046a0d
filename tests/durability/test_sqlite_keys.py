"""The embedded store keeps idempotency keys with their transactions' first records: a key is answered
while its record waits to be written and once written, survives a reopen, and goes when retention
removes its record."""

from __future__ import annotations

from pathlib import Path

from core.helpers import small_dc, spawn
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.records import key_id
from tropic.store.base import History
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State


def test_a_key_is_kept_with_its_record_survives_a_reopen_and_goes_with_retention(tmp_path: Path) -> None:
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    store = SQLiteStore(tmp_path / "store.db")
    kid = key_id("autopilot", "autopilot:p1:0")
    assert store.lookup_key(kid) is None and store.lookup_pending_key(kid) is None
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        t = c.submit("spawn_vm", spawn("r1", 1, "k"), durable=True, key=(kid, "fp"))
        assert store.lookup_key(kid) == (t.id, "fp")  # durable: written with the record
        assert store.lookup_pending_key(kid) is None  # and no longer pending
        assert c.wait(t.id, 30).state is State.COMMITTED
        other = c.submit("spawn_vm", spawn("r1", 2, "k2"), durable=True)
        assert c.wait(other.id, 30).state is State.COMMITTED
    finally:
        c.stop()
        store.close()
    store = SQLiteStore(tmp_path / "store.db")
    try:
        assert store.lookup_key(kid) == (t.id, "fp")
        store.remove_txns([t.id], History())
        assert store.lookup_key(kid) is None
    finally:
        store.close()


def test_a_bound_key_is_pending_until_its_batch_is_written(tmp_path: Path) -> None:
    from tropic.store.sqlite_keys import PendingKeys

    keys = PendingKeys()
    keys.bind(7, "kid", "fp")
    assert keys.lookup("kid") == (7, "fp")
    assert keys.take([1, 2]) == []
    rows = keys.take([7])
    assert [r[:3] for r in rows] == [("kid", 7, "fp")]
    assert keys.take([7]) == [] and keys.lookup("kid") == (7, "fp")
    keys.written(rows)
    assert keys.lookup("kid") is None
