"""The decision log in the controller's store: each decision is written as the pass records it, so
``GET /v1/autopilot/decisions`` and ``tropic autopilot decisions`` answer the same after a restart
(SQLite) and after a leader failover (ZooKeeper: the new leader reads what the old one wrote).

Where decisions live follows the store, like the pass records (:mod:`tropic.autopilot.passes`):

* ``memory://``: a list in the process (lost with it, as the rest of that store);
* ``sqlite://``: the table ``autopilot_decisions`` of the store's file (its own connection);
* ``zk://``: zlib-compressed JSON znodes ``/autopilot/decisions/d-<at ms>-<sequence>`` of the store's
  chroot (a decision too large for one znode keeps its plan's summary only).

Retention (:class:`DecisionRetention`) bounds them by count (the newest ``keep``) and by age (decisions
older than ``max_age_s`` before the newest one's time go), on every write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tropic.autopilot.decisions import DEFAULT_CAPACITY, DecisionBook
from tropic.errors import TropicError
from tropic.store.base import Store

ZNODE_MAX = 900_000  # bytes of a decision znode (ZooKeeper's default limit is 1 MiB)


@dataclass(frozen=True, slots=True)
class DecisionRetention:
    """``keep``: decisions kept (default 500, what the log shows); ``max_age_s``: how long (default a
    week of the decisions' own clock)."""

    keep: int = DEFAULT_CAPACITY
    max_age_s: float = 7 * 86_400.0

    def __post_init__(self) -> None:
        if self.keep < 1 or not self.max_age_s > 0:
            raise ValueError("decision retention keeps at least one decision for a positive time")


class MemoryDecisionBook:
    def __init__(self, retention: DecisionRetention | None = None) -> None:
        self.retention = retention or DecisionRetention()
        self._docs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def put_decision(self, doc: dict[str, Any]) -> None:
        r = self.retention
        with self._lock:
            self._docs.append(json.loads(json.dumps(doc, default=str)))
            cut = float(doc.get("at", 0.0)) - r.max_age_s
            self._docs = [d for d in self._docs if float(d.get("at", 0.0)) >= cut][-r.keep :]

    def get_decisions(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(d)) for d in self._docs[-limit:]] if limit > 0 else []


class SQLiteDecisionBook:
    """Decisions in the table ``autopilot_decisions`` of an embedded store's file."""

    def __init__(self, path: Path, retention: DecisionRetention | None = None) -> None:
        self.retention = retention or DecisionRetention()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS autopilot_decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "at REAL NOT NULL, doc TEXT NOT NULL)"
        )
        self._conn.execute("CREATE INDEX IF NOT EXISTS autopilot_decisions_at ON autopilot_decisions (at)")

    def put_decision(self, doc: dict[str, Any]) -> None:
        r = self.retention
        at = float(doc.get("at", 0.0))
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT INTO autopilot_decisions (at, doc) VALUES (?, ?)",
                    (at, json.dumps(doc, sort_keys=True, default=str)),
                )
                c.execute("DELETE FROM autopilot_decisions WHERE at < ?", (at - r.max_age_s,))
                c.execute(
                    "DELETE FROM autopilot_decisions WHERE seq <= (SELECT seq FROM autopilot_decisions "
                    "ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (r.keep,),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def get_decisions(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc FROM autopilot_decisions ORDER BY seq DESC LIMIT ?", (max(0, limit),)
            ).fetchall()
        return [json.loads(r[0]) for r in reversed(rows)]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM autopilot_decisions").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def _pack(doc: dict[str, Any]) -> bytes:
    """The znode's data: compressed JSON; a decision too large keeps only its plan's summary."""
    data = zlib.compress(json.dumps(doc, sort_keys=True, default=str).encode())
    if len(data) <= ZNODE_MAX:
        return data
    plan = doc.get("plan") or {}
    small = {
        **doc,
        "plan": {
            "policy": plan.get("policy", ""),
            "why": plan.get("why", ""),
            "truncated": {k: len(v) for k, v in plan.items() if isinstance(v, list | tuple)},
        },
        "held": doc.get("held", [])[:100],
        "utilisation": {},
    }
    return zlib.compress(json.dumps(small, sort_keys=True, default=str).encode())


class DeposedLeader(TropicError):
    """A controller whose election node is gone wrote nothing (its successor keeps the log)."""

    code = "leadership_lost"


class ZooKeeperDecisionBook:
    """Decisions as znodes under ``/autopilot/decisions`` of the store's chroot, through its client. With
    ``election`` (the controller's election node, once bound), each decision is created in a multi that
    checks that node: a deposed leader writes none."""

    ROOT = "/autopilot/decisions"

    def __init__(
        self,
        client: Any,
        retention: DecisionRetention | None = None,
        election: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.client = client
        self.retention = retention or DecisionRetention()
        self.election = election
        self.client.ensure_path(self.ROOT)

    @staticmethod
    def _parse(name: str) -> tuple[int, int]:
        """(sequence, at in ms) of a child ``d-<at ms>-<sequence>``."""
        _, at_ms, seq = name.split("-")
        return int(seq), int(at_ms)

    def _children(self) -> list[str]:
        names = [n for n in self.client.get_children(self.ROOT) if n.count("-") == 2]
        return sorted(names, key=self._parse)

    def put_decision(self, doc: dict[str, Any]) -> None:
        r = self.retention
        at_ms = max(0, int(float(doc.get("at", 0.0)) * 1000))
        path, data = f"{self.ROOT}/d-{at_ms:015d}-", _pack(doc)
        node = self.election()
        if node is None:
            self.client.create(path, data, sequence=True)
        else:
            tx = self.client.transaction()
            tx.check(node, 0)
            tx.create(path, data, sequence=True)
            results = tx.commit()
            if any(isinstance(r, Exception) for r in results):
                raise DeposedLeader(f"decision {doc.get('pass_id')} not kept: election node {node} is gone")
        names = self._children()
        cut = at_ms - int(r.max_age_s * 1000)
        gone = names[: max(0, len(names) - r.keep)]
        gone += [n for n in names[len(gone) :] if self._parse(n)[1] < cut]
        for name in gone:
            self.client.delete(f"{self.ROOT}/{name}")

    def get_decisions(self, limit: int) -> list[dict[str, Any]]:
        names = self._children()[-limit:] if limit > 0 else []
        replies = [(n, self.client.get_async(f"{self.ROOT}/{n}")) for n in names]
        out = []
        for _, reply in replies:
            try:
                data, _ = reply.get()
            except Exception:  # removed by retention meanwhile
                continue
            out.append(json.loads(zlib.decompress(data)))
        return out


def decision_book_for(store: Store, retention: DecisionRetention | None = None) -> DecisionBook:
    """Where the decisions of the controller on ``store`` live (see the module docstring)."""
    from tropic.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteDecisionBook(store.path, retention)
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "ensure_path"):
        return ZooKeeperDecisionBook(
            client, retention, election=lambda: getattr(store, "election_node", None)
        )
    return MemoryDecisionBook(retention)
