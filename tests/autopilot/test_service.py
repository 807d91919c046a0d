"""The autopilot in an embedded ``tropic serve``: built from the options, running with the server, its
pass records in the store's SQLite file (they survive a restart and stay bounded), and bad options refused
with one clear error before anything is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.api import AuditLog, TokenStore
from tropic.autopilot.passes import MemoryPassBook, SQLitePassBook, passbook_for
from tropic.errors import ConfigError
from tropic.service.autopilot import AutopilotSettings
from tropic.service.wiring import EmbeddedService, ServiceConfig, build_service


def config(tmp_path: Path, **autopilot: object) -> ServiceConfig:
    return ServiceConfig(
        tokens=TokenStore([("admin", "x" * 32, "admin")]),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        store=f"sqlite:///{tmp_path / 'store.db'}",
        port=0,
        reconcile_interval=0,
        autopilot=AutopilotSettings(**autopilot),  # type: ignore[arg-type]
    )


def test_the_embedded_server_runs_the_autopilot_and_keeps_its_passes_in_the_store(tmp_path: Path) -> None:
    service = build_service(config(tmp_path, policies="hotspot", interval=3600, dry_run=True))
    assert isinstance(service, EmbeddedService)
    try:
        a = service.autopilot
        assert a is not None and service.app.state.autopilot is a and a.guards.dry_run
        assert any("autopilot: hotspot every 3600 s, dry run" in line for line in service.describe())
        [d] = a.run_once()
        assert d.status == "idle" and "no host above" in d.why  # no sensor: no demand known
        assert isinstance(a.passes, SQLitePassBook)
    finally:
        if service.autopilot is not None:
            service.autopilot.stop()
        service.reconciler.stop()
        service.embedded.close()
        for s in service.sockets:
            s.close()


def test_sqlite_pass_records_survive_a_reopen_and_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    book = SQLitePassBook(path, keep=3)
    for i in range(6):
        book.put_autopilot_pass({"id": f"p{i}", "seq": float(i), "steps": [], "done": i != 1})
    book.close()
    again = SQLitePassBook(path, keep=3)
    ids = [r["id"] for r in again.get_autopilot_passes()]
    assert "p1" in ids  # an unfinished pass is never dropped
    assert len(ids) == 3 and ids[-1] == "p5"
    mem = MemoryPassBook(keep=2)
    for i in range(4):
        mem.put_autopilot_pass({"id": f"p{i}", "seq": float(i), "steps": [], "done": True})
    assert [r["id"] for r in mem.get_autopilot_passes()] == ["p2", "p3"]


def test_bad_autopilot_options_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown autopilot policy 'nope'; known: .*hotspot"):
        build_service(config(tmp_path, policies="hotspot,nope"))
    with pytest.raises(ConfigError, match="autopilot guards: migration budgets cannot be negative"):
        build_service(config(tmp_path, policies="hotspot", budget_per_pass=-1))
    assert isinstance(passbook_for(object()), MemoryPassBook)  # type: ignore[arg-type]
