"""The decision log on the real ZooKeeper ensemble: what one leader's autopilot decided is what the next
leader's log, ``GET /v1/autopilot/decisions`` and ``tropic autopilot decisions`` show after a failover;
the znodes stay bounded by count and by age."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.helpers import small_dc, spawn
from tropic.api import AuditLog, TokenStore
from tropic.autopilot.decision_store import (
    DecisionRetention,
    DeposedLeader,
    ZooKeeperDecisionBook,
    decision_book_for,
)
from tropic.autopilot.decisions import Decision, DecisionLog
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import project
from tropic.service.autopilot import AutopilotSettings
from tropic.service.wiring import ReplicatedService, ServiceConfig, build_service
from tropic.store.zk import ZooKeeperStore
from tropic.txn import Controller, State

TOKEN = "x" * 32


def replica(
    zk_uri: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[ReplicatedService, list[Any]]:
    service = build_service(
        ServiceConfig(
            tokens=TokenStore([("admin", TOKEN, "admin")]),
            audit=AuditLog(tmp_path / f"audit-{name}.jsonl"),
            store=zk_uri,
            driver=f"sim://{tmp_path / 'devices.db'}",
            port=0,
            reconcile_interval=0,
            name=name,
            autopilot=AutopilotSettings(policies="hotspot", interval=3600, sense_interval=3600, dry_run=True),
        )
    )
    assert isinstance(service, ReplicatedService)
    apps: list[Any] = []
    monkeypatch.setattr(service.gate, "lead", apps.append)  # no HTTP server: the app is called directly
    return service, apps


def test_the_next_leader_shows_the_decisions_of_the_last(
    zk_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_dc()
    sim = SharedSimDriver(tmp_path / "devices.db")
    sim.load(project(model))
    first, apps1 = replica(zk_uri, tmp_path, "a", monkeypatch)
    second, apps2 = replica(zk_uri, tmp_path, "b", monkeypatch)
    store = ZooKeeperStore(zk_uri)
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        assert c.wait(c.submit("spawn_vm", spawn("r1", 1, "m0", memory_mib=512)), 30).state is State.COMMITTED
        first._lead(c)
        a = first.autopilot
        assert a is not None and isinstance(a.decisions.book, ZooKeeperDecisionBook)
        decided = [*a.run_once(), *a.run_once()]
        before = json.loads(json.dumps([d.to_dict() for d in decided]))
        first._step_down()
    finally:
        c.stop()
        store.close()
    # The next leader: another replica, its own session and controller on the same ensemble.
    store = ZooKeeperStore(zk_uri)
    c = Controller.open(store, sim).start()
    try:
        second._lead(c)
        b = second.autopilot
        assert b is not None and b is not a
        assert [d.to_dict() for d in b.decisions.recent()] == before
        client = TestClient(apps2[0])
        body = client.get("/v1/autopilot/decisions", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert body["decisions"] == before
        [more] = b.run_once()
        assert [d.pass_id for d in DecisionLog(book=decision_book_for(store)).recent()] == [
            *(d["pass_id"] for d in before),
            more.pass_id,
        ]
        second._step_down()
    finally:
        c.stop()
        store.close()
        sim.close()
        for s in (first, second):
            s.devices.close()
            for sock in s.sockets:
                sock.close()
    assert apps1 and apps2


def test_decision_znodes_are_bounded_by_count_and_age(zk_client: Any) -> None:
    book = ZooKeeperDecisionBook(zk_client, DecisionRetention(keep=4, max_age_s=1000))
    for i in range(7):
        book.put_decision(Decision(f"p{i}", 100.0 * i, "periodic", "hotspot", "d").to_dict())
    assert [d["pass_id"] for d in book.get_decisions(100)] == ["p3", "p4", "p5", "p6"]
    assert len(zk_client.get_children(book.ROOT)) == 4
    huge = Decision("big", 5000.0, "periodic", "consolidation", "d")
    huge.plan = {
        "policy": "consolidation",
        "moves": [{"vm": hashlib.sha256(b"%d" % i).hexdigest(), "dest": f"/h/{i}"} for i in range(60_000)],
    }
    book.put_decision(huge.to_dict())  # older ones go by age; too large a plan keeps its summary
    [kept] = book.get_decisions(100)
    assert kept["pass_id"] == "big" and kept["plan"]["truncated"] == {"moves": 60_000}


def test_a_deposed_leader_keeps_no_decision(zk_client: Any) -> None:
    zk_client.create("/election/n-0000000001", b"", makepath=True)
    node = ["/election/n-0000000001"]
    book = ZooKeeperDecisionBook(zk_client, election=lambda: node[0])
    log = DecisionLog(book=book)
    log.add(Decision("p1", 1.0, "periodic", "hotspot", "d"))  # leading: kept
    zk_client.delete(node[0])  # its election session ended
    log.add(Decision("p2", 2.0, "periodic", "hotspot", "d"))
    assert log.write_errors == 1 and [d.pass_id for d in log.recent()] == ["p1", "p2"]
    assert [d["pass_id"] for d in book.get_decisions(10)] == ["p1"]  # the store has only what it led for
    with pytest.raises(DeposedLeader, match="election node /election/n-0000000001 is gone"):
        book.put_decision(Decision("p3", 3.0, "periodic", "hotspot", "d").to_dict())
