"""The decision log in the controller's store: it survives a restart of an embedded server (SQLite), as
``GET /v1/autopilot/decisions`` and ``tropic autopilot decisions`` show, and it stays bounded by count and
by age. (The ZooKeeper store and a leader failover: tests/distributed/test_autopilot_decisions_zk.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from autopilot.served import close, config, http, served
from tropic.autopilot.decision_store import (
    DecisionRetention,
    MemoryDecisionBook,
    SQLiteDecisionBook,
    decision_book_for,
)
from tropic.autopilot.decisions import Decision, DecisionLog, StepOutcome
from tropic.cli.main import app
from tropic.service.wiring import EmbeddedService, build_service

HOT = "/compute/us-east/host-01"
TOKEN = "x" * 32


def decision(i: int, at: float) -> Decision:
    d = Decision(f"p{i}", at, "periodic", "hotspot", f"digest{i}", "acted", f"why {i}", gain=1.5, cost=0.5)
    d.steps = [StepOutcome("migrate_vm", {"vm": f"/v{i}", "dest": "/h"}, f"autopilot:p{i}:0", i, "COMMITTED")]
    d.utilisation = {HOT: 0.5}
    return d


def test_decisions_survive_a_restart_of_the_embedded_server(tmp_path: Path) -> None:
    with served(tmp_path, policies="hotspot", interval=3600, sense_interval=3600) as s:
        image = "/storage/us-east/san-1/img-ubuntu"
        for name in ("a", "b"):
            s.run("spawn_vm", {"name": name, "host": HOT, "image": image, "vcpus": 8, "memory_mib": 1024})
        s.load.cpu_of.update(a=1.0, b=0.95)  # 15.6 of 16 cores: hot
        first = s.autopilot.run_once()
        s.clock.advance(300)
        second = s.autopilot.run_once()
        before = json.loads(json.dumps([d.to_dict() for d in [*first, *second]]))  # as JSON answers it
        assert [d["status"] for d in before] == ["acted", "idle"] and before[0]["steps"][0][
            "state"
        ] == "COMMITTED"
    # The server stops; a new one opens the same store: its log starts where the old one stopped.
    service = build_service(config(tmp_path, policies="hotspot", interval=3600))
    assert isinstance(service, EmbeddedService) and service.autopilot is not None
    try:
        assert [d.to_dict() for d in service.autopilot.decisions.recent()] == before
        with http(service) as url:
            body = httpx.get(
                f"{url}/v1/autopilot/decisions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ).json()
            assert body["decisions"] == before
            result = CliRunner().invoke(
                app, ["autopilot", "decisions", "--url", url, "--token", TOKEN, "--json"]
            )
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["decisions"] == before
        [again] = service.autopilot.run_once()  # and it goes on writing after them
        assert [d.pass_id for d in service.autopilot.decisions.recent()][-1] == again.pass_id
    finally:
        close(service)
    book = SQLiteDecisionBook(tmp_path / "store.db")
    assert [d["pass_id"] for d in book.get_decisions(10)] == [*(d["pass_id"] for d in before), again.pass_id]
    book.close()


def test_the_stored_log_is_bounded_by_count_and_by_age(tmp_path: Path) -> None:
    retention = DecisionRetention(keep=5, max_age_s=1000)
    sqlite_book = SQLiteDecisionBook(tmp_path / "d.db", retention)
    for book in (MemoryDecisionBook(retention), sqlite_book):
        log = DecisionLog(capacity=100, book=book)
        for i in range(8):
            log.add(decision(i, 100.0 * i))
        assert [d["pass_id"] for d in book.get_decisions(100)] == ["p3", "p4", "p5", "p6", "p7"]  # count
        log.add(decision(8, 5000.0))  # every other one is older than 1000 s before it: age
        assert [d["pass_id"] for d in book.get_decisions(100)] == ["p8"]
        assert book.get_decisions(0) == []
        assert Decision.from_dict(book.get_decisions(1)[0]) == decision(8, 5000.0)
    assert sqlite_book.count() == 1
    sqlite_book.close()
    reopened = DecisionLog(capacity=3, book=SQLiteDecisionBook(tmp_path / "d.db", retention))
    assert [d.pass_id for d in reopened.recent()] == ["p8"] and reopened.recent()[0] == decision(8, 5000.0)
    assert isinstance(decision_book_for(object()), MemoryDecisionBook)  # type: ignore[arg-type]


def test_a_store_that_cannot_keep_a_decision_does_not_stop_the_pass() -> None:
    class Broken(MemoryDecisionBook):
        def put_decision(self, doc: dict[str, object]) -> None:
            raise OSError("disk full")

    log = DecisionLog(book=Broken())
    log.add(decision(1, 1.0))
    assert log.write_errors == 1 and [d.pass_id for d in log.recent()] == ["p1"]
