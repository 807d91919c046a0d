"""Fixtures of the distributed-mode tests: a store opener per backend, so one behaviour suite runs
against SQLite and ZooKeeper (TaskFlow's persistence-mixin habit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tropic.store.base import Store


class Opener(Protocol):
    def __call__(self, *, read_only: bool = False) -> Store: ...


@pytest.fixture(params=["sqlite", "zookeeper"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open_store()``: a new store object on the same durable location (a new process would open
    exactly this); ``read_only`` to inspect it without taking it over from a running controller. Every
    store it made is closed after the test."""
    made: list[Store] = []
    if request.param == "sqlite":
        from tropic.store.sqlite import SQLiteStore

        def opener(*, read_only: bool = False) -> Store:
            made.append(SQLiteStore(tmp_path / "store.db"))
            return made[-1]

    else:
        uri = request.getfixturevalue("zk_uri")
        from tropic.store.zk import ZooKeeperStore

        def opener(*, read_only: bool = False) -> Store:
            made.append(ZooKeeperStore(uri, timeout=30, snapshot_entries=8, read_only=read_only))
            return made[-1]

    yield opener
    for store in made:
        store.close()
