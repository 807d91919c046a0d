"""Retention on the embedded store: records past the policy are archived, then removed; nothing a fence
refers to is removed; a pass cut at any point (SIGKILL included) loses and duplicates nothing; a bad
policy or archive folder is one clear error before anything runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.helpers import small_dc, spawn, vm
from tropic.drivers import Fault, SimDriver
from tropic.errors import ConfigError, UnknownTransaction
from tropic.model import project
from tropic.records.query import TxnQuery
from tropic.retention import Archive, Retention, retain
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State, Transaction


@pytest.mark.parametrize(
    ("text", "age", "count"),
    [
        ("30d,10M", 30 * 86400.0, 10**7),
        ("100K", None, 100_000),
        ("12h", 43200.0, None),
        ("5000, 2w", 14 * 86400.0, 5000),
    ],
)
def test_policies_parse(text: str, age: float | None, count: int | None) -> None:
    assert Retention.parse(text) == Retention(age, count)


@pytest.mark.parametrize(
    "text", ["", "30", "30x", "1d,2d", "5,6", "0d", "d", "30d,10M,5", "-1d", "30 d", ","]
)
def test_malformed_policies_are_one_clear_error(text: str) -> None:
    if text == "30":  # a bare number is a count: well-formed
        assert Retention.parse(text) == Retention(None, 30)
        return
    with pytest.raises(ConfigError, match="retention"):
        Retention.parse(text)


def test_an_archive_folder_that_cannot_be_written_is_refused_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot be written"):
        Archive(blocker / "archive").check()


def _history(db: Path) -> tuple[list[int], int]:
    """60 transactions on a store (one FAILED, its fence kept): the ids, and the FAILED one."""
    model = small_dc()
    sim = SimDriver(faults=[Fault(action="create_vm"), Fault(action="delete_volume", undo=True)])
    sim.load(project(model))
    c = Controller.open(SQLiteStore(db), sim, initial=lambda: model).start()
    try:
        failed = c.wait(c.submit("spawn_vm", spawn("r1", 3, "bad")), 10)
        assert failed.state is State.FAILED
        sim.faults = []  # the rest succeed
        for i in range(20):
            c.submit("spawn_vm", spawn("r1", 1 + i % 2, f"v{i}", memory_mib=256))
            c.submit("resize_vm", {"vm": vm("r1", 1 + i % 2, f"v{i}"), "vcpus": 2, "memory_mib": 512})
            if i < 19:
                c.submit("destroy_vm", {"vm": vm("r1", 1 + i % 2, f"v{i}")})
        assert c.drain(30)
    finally:
        c.stop()
        c.store.close()
    return list(range(1, 61)), failed.id


def _archived_ids(archive: Archive) -> list[int]:
    return [int(r["id"]) for f in archive.files() for r in archive.read(f)]


def test_a_pass_archives_then_removes_what_the_policy_lets_go(tmp_path: Path) -> None:
    ids, failed = _history(tmp_path / "s.db")
    archive = Archive(tmp_path / "archive")
    archive.check()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        stored = {i: t.to_dict() for i in ids if (t := store.get_txn(i)) is not None}
        result = retain(store, archive, Retention(max_count=10), batch=7)
        kept = sorted(int(r[0]) for r in store._conn.execute("SELECT id FROM txns"))
    finally:
        store.close()
    assert kept == sorted({failed, *ids[-10:]})  # the newest 10, and the one a fence refers to
    # The archive holds each record as the store did (its JSON text joined to its action log, undecoded).
    for f in archive.files():
        for r in archive.read(f):
            assert Transaction.from_dict(r).to_dict() == stored[int(r["id"])]
    gone = [i for i in ids if i not in kept]
    assert result.removed == result.archived == len(gone) and result.files == -(-len(gone) // 7)
    assert sorted(_archived_ids(archive)) == gone  # each exactly once
    record, where = archive.find(gone[0]) or ({}, None)
    assert record["id"] == gone[0] and record["actions"] and where is not None
    # A reopened controller still counts them, and new ids follow the removed ones.
    sim = SimDriver()
    c = Controller.open(SQLiteStore(tmp_path / "s.db"), sim)
    try:
        assert c.counters.submitted == 60
        with pytest.raises(UnknownTransaction):
            c.get(gone[0])
        assert c.get(failed).state is State.FAILED
        assert next(c._ids) == 61
    finally:
        c.store.close()


def test_a_pass_cut_between_archive_and_removal_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    ids, failed = _history(tmp_path / "s.db")
    archive = Archive(tmp_path / "archive")
    archive.check()
    # A real SIGKILL right after the first batch's file is written, before its records are removed.
    script = (
        "import os, signal, sys\n"
        "from tropic.retention import Archive, Retention, retain\n"
        "from tropic.store import archive as a\n"
        "from tropic.store.sqlite import SQLiteStore\n"
        "write = a.Archive.write_lines\n"
        "def killed(self, *args):\n"
        "    path = write(self, *args)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "a.Archive.write_lines = killed\n"
        "retain(SQLiteStore(sys.argv[1]), Archive(sys.argv[2]), Retention(max_count=10), batch=7)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.db"), str(archive.folder)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(_archived_ids(archive)) == 7  # written, not yet removed
    store = SQLiteStore(tmp_path / "s.db")
    try:
        assert store.get_txn(1) is not None
        result = retain(store, archive, Retention(max_count=10), batch=7)
        kept = sorted(int(r[0]) for r in store._conn.execute("SELECT id FROM txns"))
    finally:
        store.close()
    gone = [i for i in ids if i not in kept]
    assert result.removed == len(gone) and result.archived == len(gone) - 7
    assert sorted(_archived_ids(archive)) == gone  # nothing lost, nothing twice
    assert failed in kept


def test_serve_refuses_a_bad_policy_or_archive_folder_before_starting(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tropic.cli.main import app

    store = f"sqlite:///{tmp_path / 's.db'}"
    base = ["serve", "--store", store, "--port", "0", "--token-file", str(tmp_path / "token")]
    bad = CliRunner().invoke(app, [*base, "--retain", "30x"])
    assert bad.exit_code == 2 and "retention '30x'" in bad.output
    (tmp_path / "file").write_text("")
    unwritable = CliRunner().invoke(
        app, [*base, "--retain", "30d", "--archive", str(tmp_path / "file" / "a")]
    )
    assert unwritable.exit_code == 2 and "cannot be written" in unwritable.output
    assert not (tmp_path / "s.db").exists()  # refused before the store was touched


def test_a_service_with_retention_shows_archived_transactions(tmp_path: Path) -> None:
    """Wired into a service: the store reads removed records back from the archive."""
    from tropic.api import AuditLog, TokenStore
    from tropic.service.wiring import EmbeddedService, ServiceConfig, build_service

    config = ServiceConfig(
        tokens=TokenStore([("admin", "x" * 32, "admin")]),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        store=f"sqlite:///{tmp_path / 's.db'}",
        port=0,
        reconcile_interval=0,
        retain=Retention(max_count=3),
    )
    service = build_service(config)
    assert isinstance(service, EmbeddedService) and service.retention is not None
    try:
        deadline = time.monotonic() + 30
        while service.retention.passes < 1 and time.monotonic() < deadline:  # its pass at start is done
            time.sleep(0.01)
        c = service.controller
        ts = [c.submit("stop_vm", {"vm": f"/compute/nowhere/vm-{i}"}) for i in range(8)]
        for t in ts:
            c.wait(t, 10)
        store = c.store
        assert isinstance(store, SQLiteStore)
        assert retain(store, service.retention.archive, config.retain).removed == 5
        old = c.get(ts[0].id)  # from the archive (tmp/s.db.archive)
        assert old.state is State.ABORTED and old.args == {"vm": "/compute/nowhere/vm-0"}
        assert any(line.startswith("  retention:") for line in service.describe())
        for f in service.retention.archive.files():
            f.path.unlink()
        with pytest.raises(UnknownTransaction, match="removed from the store by retention"):
            c.get(ts[0].id)
    finally:
        service.retention.stop()
        service.controller.stop()
        service.embedded.close()
        for s in service.sockets:
            s.close()


def _pages(store: SQLiteStore, query: TxnQuery) -> list[int]:
    """Every id a reader finds by paging ``query`` (limit 4) down to the end."""
    seen: list[int] = []
    before: int | None = None
    while True:
        page = store.find_txns(replace(query, before=before))
        seen.extend(t.id for t in page)
        if len(page) < query.limit:
            return seen
        before = page[-1].id


def test_paging_finds_every_record_stored_or_archived_exactly_once(tmp_path: Path) -> None:
    ids, failed = _history(tmp_path / "s.db")
    archive = Archive(tmp_path / "archive")
    archive.check()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        everything = {i: t for i in ids if (t := store.get_txn(i)) is not None}
        retain(store, archive, Retention(max_count=10), batch=7)
        store.archive = archive
        # A pass cut between writing its file and removing the records: one record in both places.
        both = ids[-3]
        archive.write([everything[both].to_dict()])
        assert sorted(_pages(store, TxnQuery(limit=4))) == ids  # each once, newest first
        assert _pages(store, TxnQuery(limit=4)) == sorted(ids, reverse=True)
        destroys = [i for i, t in everything.items() if t.procedure == "destroy_vm"]
        assert _pages(store, TxnQuery(procedure="destroy_vm", limit=4)) == sorted(destroys, reverse=True)
        assert _pages(store, TxnQuery(state=State.FAILED, limit=4)) == [failed]
        # A page of recent history is answered by the store alone: no archive file is read.
        store.archive = Archive(tmp_path / "nowhere")
        assert [t.id for t in store.find_txns(TxnQuery(limit=5))] == sorted(ids, reverse=True)[:5]
    finally:
        store.close()


def test_a_pass_gives_free_pages_back_to_the_file_system(tmp_path: Path) -> None:
    """Removal from the SQLite file with an incremental vacuum: once a pass leaves more than a quarter of
    the file free, the free pages beyond a tenth go back to the file system (a steady load reuses the
    rest)."""
    ids, _ = _history(tmp_path / "s.db")
    archive = Archive(tmp_path / "archive")
    archive.check()
    store = SQLiteStore(tmp_path / "s.db")
    try:
        conn = store._conn

        def pages() -> tuple[int, int]:
            return (
                int(conn.execute("PRAGMA page_count").fetchone()[0]),
                int(conn.execute("PRAGMA freelist_count").fetchone()[0]),
            )

        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental, since creation
        before, _ = pages()
        result = retain(store, archive, Retention(max_count=2))
        after, free = pages()
    finally:
        store.close()
    assert result.removed >= len(ids) - 3
    assert free * 4 <= after, (after, free)
    assert after < before, (before, after)
