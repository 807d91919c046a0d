"""``sim`` devices shared by several processes: the simulated datacenter of distributed mode's workers.

:class:`SharedSimDriver` keeps no state of its own between actions: each action re-reads the devices it
touches from the sim's SQLite file inside an exclusive SQLite transaction (``BEGIN IMMEDIATE``), applies
its effect and writes it back before the transaction ends, so worker processes on one machine act on the
same devices as if they were real ones. Inventories are read fresh from the file, so a controller process
compares its model with what the workers did. Latency is spent outside the transaction (devices work in
parallel); fault rules come from the file; their ``nth``/``times`` counters are per process.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tropic.drivers.base import Args, Stats, Step
from tropic.drivers.sim import Fault, SimDriver
from tropic.drivers.sim_rows import under
from tropic.errors import CorruptStore, DriverError
from tropic.model import Inventory
from tropic.retry import RetryPolicy

__all__ = ["SharedSimDriver"]

BUSY_TIMEOUT_MS = 60_000
# How long to wait for another process to finish creating the devices file.
CREATION_WAIT = RetryPolicy(attempts=None, backoff_s=0.02, max_backoff_s=0.2, deadline_s=10.0)


class _BeingCreated(CorruptStore):
    """The devices file exists but has no tables yet."""


class SharedSimDriver(SimDriver):
    """``sim:///path/devices.db`` opened by several processes at once (see the module docstring)."""

    name = "sim"
    shared_file = True  # its lock is taken shared: an embedded owner of the file is refused, and refuses it

    def __init__(
        self,
        state_file: str | os.PathLike[str],
        *,
        seed: int = 0,
        latency: float = 0.0,
        faults: list[Fault] | None = None,
    ) -> None:
        self._fresh: set[str] = set()  # objects read from the file in the current SQLite transaction
        path = Path(state_file)

        def open_file() -> None:
            try:
                super(SharedSimDriver, self).__init__(
                    seed=seed, latency=latency, faults=faults, state_file=path
                )
            except CorruptStore as e:
                # Another process may be creating the file right now (SQLite has made it, not yet its
                # tables): wait for it. A foreign file is larger than one page and is refused at once.
                if path.exists() and path.stat().st_size <= 4096:
                    raise _BeingCreated(e.message, path=str(path)) from e
                raise

        try:
            CREATION_WAIT.call(open_file, retry_on=(_BeingCreated,))
        except _BeingCreated:
            raise CorruptStore(f"{path} stays empty: not a sim device file", path=str(path)) from None
        db = self._db
        assert db is not None
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    # --- reading the shared file ----------------------------------------------------------------------
    def _begin(self) -> sqlite3.Connection:
        db = self._db
        assert db is not None
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes, readers go on
        return db

    def _refresh(self, key: str) -> None:
        """Re-read one device and the objects it holds (its VMs or volumes) inside the action's exclusive
        transaction (once per transaction)."""
        db = self._begin()
        if key in self._fresh:
            return
        rows = self._rows()
        for child in rows.children(key):
            self._saved.pop(child, None)
        for devices in (self.hosts, self.sans, self.routers):
            devices.pop(key, None)
        self._saved.pop(key, None)
        low, high = under(key)
        found = db.execute(
            "SELECT key, kind, value FROM sim_objects WHERE key=? OR (key>? AND key<?) ORDER BY key",
            (key, low, high),
        ).fetchall()
        for k, kind, value in found:
            rows.install(k, kind, value)
            self._saved[k] = value
        self._fresh.add(key)

    def _refresh_all(self) -> None:
        db = self._db
        assert db is not None
        with self._lock:
            db.execute("BEGIN")
            try:
                rows = db.execute("SELECT key, kind, value FROM sim_objects ORDER BY key").fetchall()
                applied = db.execute("SELECT txn, idx, undo, n FROM sim_applied").fetchall()
            finally:
                db.execute("COMMIT")
            self.hosts, self.sans, self.routers, self._saved = {}, {}, {}, {}
            devices = self._rows()
            for key, kind, value in rows:
                devices.install(key, kind, value)
                self._saved[key] = value
            self.applied = {(t, i, bool(u)): n for t, i, u, n in applied}

    def inventory(self) -> Inventory:
        self._refresh_all()
        return super().inventory()

    def stats(self, hosts: Iterable[str], now: float) -> Stats:
        """Readings of the devices as the file holds them now (worker processes change them)."""
        self._refresh_all()
        return super().stats(hosts, now)

    def reload(self, path: str) -> Inventory:
        """The devices at or below ``path`` (and the device holding it), read fresh from the file."""

        def near(p: str) -> bool:
            return path == "/" or p == path or p.startswith(path + "/") or path.startswith(p + "/")

        return {
            section: {p: v for p, v in items.items() if near(p)}
            for section, items in self.inventory().items()
        }

    def duplicates(self) -> list[tuple[int, int, bool]]:
        self._refresh_all()
        return super().duplicates()

    # --- the device semantics read what they change first ------------------------------------------------
    def _host(self, host: str) -> dict[str, Any]:
        self._refresh(host)
        return super()._host(host)

    def _san(self, san: str) -> dict[str, Any]:
        self._refresh(san)
        return super()._san(san)

    def set_next_hop(self, router: str, args: Args) -> None:
        self._refresh(router)
        if router not in self.routers:
            raise DriverError(f"sim: no router {router}", path=router)
        super().set_next_hop(router, args)

    def _persist(self, step: Step | None) -> None:
        """Write what the action changed and end its exclusive transaction (called under the lock)."""
        if self._db is not None and not self._db.in_transaction and not self._dirty:
            return
        db = self._begin()
        try:
            changed, gone = self._changes()
            if changed or gone:
                db.executemany("INSERT OR REPLACE INTO sim_objects VALUES (?, ?, ?)", changed)
                db.executemany("DELETE FROM sim_objects WHERE key=?", gone)
                if step is not None:
                    k = (step.txn, step.index, int(step.undo))
                    row = db.execute(
                        "SELECT n FROM sim_applied WHERE txn=? AND idx=? AND undo=?", k
                    ).fetchone()
                    n = (row[0] if row is not None else 0) + 1
                    db.execute("INSERT OR REPLACE INTO sim_applied VALUES (?, ?, ?, ?)", (*k, n))
                    self.applied[(step.txn, step.index, step.undo)] = n
                    self._counted(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            self._fresh.clear()
