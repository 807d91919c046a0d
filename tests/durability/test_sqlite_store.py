"""The SQLite store round-trips everything recovery needs: the model, queued and in-flight transactions
(with their action logs and model deltas), final records, and fences."""

from __future__ import annotations

from pathlib import Path

from core.helpers import small_dc, spawn
from tropic.drivers import Fault, SimDriver
from tropic.model import STANDARD, project
from tropic.scenario import host_path
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State


def test_in_flight_transaction_round_trips_with_action_log_and_delta(tmp_path: Path) -> None:
    model = small_dc()
    store = SQLiteStore(tmp_path / "s.db")
    sim = SimDriver()
    sim.load(project(model))
    held = sim.hang(host_path("r1", 1), action="create_vm", timeout=120)
    c = Controller.open(store, sim, initial=lambda: model).start()
    t = c.submit("spawn_vm", spawn("r1", 1, "a"), durable=True)
    # create_vm is on the device (held there): nothing reaches a device before the store has the
    # STARTED record and its delta, so they are committed by now.
    assert held.entered.wait(60), "create_vm never reached the device"
    assert t.state is State.STARTED
    restored = SQLiteStore(tmp_path / "s.db").restore(STANDARD)
    assert restored is not None
    [r] = [x for x in restored.txns if x.id == t.id]
    assert r.state is State.STARTED
    assert [a.action for a in r.actions] == ["clone_image", "export_volume", "import_volume", "create_vm"]
    assert r.delta is not None and "/compute/r1/host-01/a" in r.delta.after
    assert "/compute/r1/host-01/a" in restored.model  # the model change is durable with the state
    sim.release(held)
    assert c.drain(60)
    c.stop()
    final = SQLiteStore(tmp_path / "s.db").restore(STANDARD)
    assert final is not None
    [f] = [x for x in final.txns if x.id == t.id]
    assert f.state is State.COMMITTED and f.delta is None and len(f.actions) == 4
    assert [s.status for s in f.steps] == ["done"] * 4


def test_failed_transaction_fences_survive_restart(tmp_path: Path) -> None:
    model = small_dc()
    sim = SimDriver(faults=[Fault(action="create_vm"), Fault(action="delete_volume", undo=True)])
    sim.load(project(model))
    with Controller.open(SQLiteStore(tmp_path / "s.db"), sim, initial=lambda: model) as c:
        t = c.wait(c.submit("spawn_vm", spawn("r1", 1, "bad")), 60)
        assert t.state is State.FAILED
    again = Controller.open(SQLiteStore(tmp_path / "s.db"), sim)
    assert again.fenced == {"/storage/r1/san-1/vol-bad": t.id}
    assert again.get(t.id).left_behind == ["/storage/r1/san-1/vol-bad"]
