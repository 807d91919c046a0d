"""Durable pass records: a pass is written to the controller's store *before* it acts, so a pass
interrupted by a crash or a failover is resumed by the next leader, never lost and never applied twice.

A record holds the pass id, the digest of its inputs, the plan's steps (procedure, arguments, idempotency
key) and, as they end, each step's transaction. Every step's transaction is submitted with an idempotency
key derived from the pass id and the step's index, which the ZooKeeper store writes with the
transaction's first record: a new leader resubmitting an unfinished pass finds the transactions that had
been submitted and submits only the others.

Where records live follows the store: ``memory://``: in memory; ``sqlite://``: a table
``autopilot_passes`` of the store's file; ``zk://``: znodes under ``/autopilot/passes`` of the store's
chroot. Only the newest :data:`KEEP` records are kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from tropic.store.base import Store

KEEP = 200  # pass records kept (finished ones beyond it are removed, oldest first)


class PassBook(Protocol):
    def put_autopilot_pass(self, record: dict[str, Any]) -> None:
        """Write (or overwrite) the record ``record["id"]``."""

    def get_autopilot_passes(self) -> list[dict[str, Any]]:
        """Every record kept, oldest first (by ``seq``)."""


def _trim(records: list[dict[str, Any]], keep: int) -> list[str]:
    """Ids of finished records beyond the newest ``keep``."""
    extra = len(records) - keep
    return [r["id"] for r in records if r.get("done")][: max(0, extra)]


class MemoryPassBook:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put_autopilot_pass(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[record["id"]] = json.loads(json.dumps(record))
            for gone in _trim(self._sorted(), self.keep):
                del self._records[gone]

    def _sorted(self) -> list[dict[str, Any]]:
        return sorted(self._records.values(), key=lambda r: r["seq"])

    def get_autopilot_passes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(r)) for r in self._sorted()]


class SQLitePassBook:
    """Records in the table ``autopilot_passes`` of an embedded store's file (its own connection)."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS autopilot_passes (id TEXT PRIMARY KEY, seq REAL NOT NULL, "
            "doc TEXT NOT NULL)"
        )

    def put_autopilot_pass(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO autopilot_passes VALUES (?, ?, ?)",
                (record["id"], record["seq"], json.dumps(record, sort_keys=True)),
            )
            gone = _trim(self._read(), self.keep)
            self._conn.executemany("DELETE FROM autopilot_passes WHERE id = ?", [(g,) for g in gone])

    def _read(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT doc FROM autopilot_passes ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def get_autopilot_passes(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._read()

    def close(self) -> None:
        self._conn.close()


class ZooKeeperPassBook:
    """Records as znodes ``/autopilot/passes/<id>`` of the store's chroot, through its client."""

    ROOT = "/autopilot/passes"

    def __init__(self, client: Any, keep: int = KEEP) -> None:
        self.client = client
        self.keep = keep
        self.client.ensure_path(self.ROOT)

    def put_autopilot_pass(self, record: dict[str, Any]) -> None:
        path = f"{self.ROOT}/{record['id']}"
        data = json.dumps(record, sort_keys=True).encode()
        if self.client.exists(path):
            self.client.set(path, data)
        else:
            self.client.create(path, data)
        for gone in _trim(self.get_autopilot_passes(), self.keep):
            self.client.delete(f"{self.ROOT}/{gone}")

    def get_autopilot_passes(self) -> list[dict[str, Any]]:
        out = []
        for name in self.client.get_children(self.ROOT):
            data, _ = self.client.get(f"{self.ROOT}/{name}")
            out.append(json.loads(data))
        return sorted(out, key=lambda r: r["seq"])


def passbook_for(store: Store) -> PassBook:
    """Where the pass records of the controller on ``store`` live (see the module docstring)."""
    from tropic.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLitePassBook(store.path)
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "ensure_path"):
        return ZooKeeperPassBook(client)
    return MemoryPassBook()
