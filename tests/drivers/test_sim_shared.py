"""Opening a shared sim devices file that another process is still creating: wait for its tables under
the retry policy, give up when it stays empty, refuse a foreign file at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tropic.drivers import sim_shared
from tropic.drivers.sim import SimDriver
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.errors import CorruptStore
from tropic.retry import RetryPolicy


def being_created(path: Path) -> None:
    """What another process leaves while it creates the devices file: an SQLite file with no tables yet
    (an empty file is simply a new one, opened at once)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def count_opens(monkeypatch: pytest.MonkeyPatch, on_call: dict[int, object] | None = None) -> list[Path]:
    """Record every attempt to open the file; ``on_call[n]()`` runs before attempt ``n``."""
    opened: list[Path] = []
    real = SimDriver._open

    def spy(self: SimDriver, path: Path, *rest: Any) -> None:
        opened.append(path)
        hook = (on_call or {}).get(len(opened))
        if callable(hook):
            hook()
        real(self, path, *rest)

    monkeypatch.setattr(SimDriver, "_open", spy)
    return opened


def test_a_file_whose_tables_arrive_later_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "devices.db"
    being_created(path)  # another process has created the file, not yet its tables

    def other_process_finishes() -> None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE sim_objects (key TEXT PRIMARY KEY, kind TEXT, value TEXT)")

    opened = count_opens(monkeypatch, {3: other_process_finishes})
    d = SharedSimDriver(path)
    try:
        assert len(opened) == 3  # two refusals while the file was empty, then it opened
        assert d.inventory() == {"hosts": {}, "storage": {}, "routers": {}}
    finally:
        d.close()


def test_a_file_that_stays_empty_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "devices.db"
    being_created(path)
    monkeypatch.setattr(sim_shared, "CREATION_WAIT", RetryPolicy(attempts=4, backoff_s=0.0, deadline_s=None))
    opened = count_opens(monkeypatch)
    with pytest.raises(CorruptStore, match="stays empty: not a sim device file") as info:
        SharedSimDriver(path)
    assert len(opened) == 4
    assert info.value.path == str(path)


def test_an_empty_file_is_a_new_devices_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "devices.db"
    path.touch()
    opened = count_opens(monkeypatch)
    d = SharedSimDriver(path)
    try:
        assert len(opened) == 1
        assert d.inventory() == {"hosts": {}, "storage": {}, "routers": {}}
    finally:
        d.close()


def test_a_foreign_file_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO accounts (name) VALUES (?)", [("x" * 200,)] * 100)
    assert path.stat().st_size > 4096
    opened = count_opens(monkeypatch)
    with pytest.raises(CorruptStore, match="is not a sim device file; refusing"):
        SharedSimDriver(path)
    assert len(opened) == 1
