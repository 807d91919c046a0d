"""The embedded store: one SQLite file (WAL) holding the model, the transaction records and the queue.

The controller's logical thread reports changes; :meth:`SQLiteStore.commit` writes everything reported
since the last commit in one SQLite transaction and fsyncs once (group commit). A transaction record and
the model change its state implies are therefore always durable together. The input queue is the set of
records in SUBMITTED or DEFERRED state, in id order.

A file that is not a tropic store (another SQLite database, or not SQLite at all) is refused with
:class:`~tropic.errors.CorruptStore` and never modified: it is inspected read-only first.

One process at a time opens a store for writing: :class:`SQLiteStore` holds the store's OS lock
(:mod:`tropic.owner`) from open to close, and a second process is refused with
:class:`~tropic.errors.StoreInUse` naming the holder. :func:`read_snapshot` reads a live store without
writing and without the lock, from one consistent SQLite read transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tropic.errors import CorruptStore, StoreError, UnknownTransaction
from tropic.model import Delta, Model, Node, Schema, parent_of
from tropic.owner import Holder, OwnerLock, acquire
from tropic.records.query import TxnQuery
from tropic.records.record import Transaction
from tropic.store import sqlite_keys, sqlite_obs, sqlite_retain
from tropic.store.archive import Archive, with_archived
from tropic.store.base import History, Restored, Store
from tropic.store.observations import ObservationRow
from tropic.store.sqlite_retain import FINAL_STATES, history_of

FORMAT = "tropic-store"
VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, attrs TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txns (
    id INTEGER PRIMARY KEY, state TEXT NOT NULL, procedure TEXT NOT NULL, submitter TEXT NOT NULL,
    record TEXT NOT NULL, actions TEXT, delta TEXT
);
CREATE TABLE IF NOT EXISTS fences (path TEXT PRIMARY KEY, txn INTEGER NOT NULL);
DROP INDEX IF EXISTS txns_state;
"""
# (txns_state, an index on txns.state, was never read and cost every commit two more pages to write.)


CHECKPOINT_EVERY_S = 1.0  # how often the checkpointer copies the write-ahead log into the database
AUTOCHECKPOINT_PAGES = 16_384  # a commit checkpoints itself only past this WAL size (a stalled checkpointer)


class _Checkpointer:
    """Copies the write-ahead log into the database file from its own connection and thread.

    Left to SQLite, the commit that crosses the WAL threshold runs the checkpoint itself: with a database
    of millions of rows that is a stall of tens of milliseconds in the middle of the group commit, and its
    random writes slow every later fsync. A passive checkpoint here never blocks the writer; the
    threshold stays as a backstop (raised, see AUTOCHECKPOINT_PAGES)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tropic-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            with contextlib.suppress(sqlite3.Error):  # busy or closing: the next round tries again
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


@dataclass(slots=True)
class _Batch:
    """What one seal took: rows ready to write, in the order they must be applied."""

    node_dels: list[tuple[str]] = field(default_factory=list)
    node_puts: list[tuple[str, str, str]] = field(default_factory=list)
    txns: list[tuple[Any, ...]] = field(default_factory=list)
    fences: list[tuple[str, int | None]] = field(default_factory=list)
    keys: list[sqlite_keys.KeyRow] = field(default_factory=list)  # idempotency keys of new records


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _validate(path: Path) -> bool:
    """True if ``path`` holds a tropic store, False if it does not exist; CorruptStore otherwise.
    Opens the file read-only, so a foreign file is never touched."""
    if not path.exists():
        return False
    if path.is_dir():
        raise CorruptStore(f"{path} is a directory, not a tropic store", path=str(path))
    if path.stat().st_size == 0:
        return False  # created, then stopped before SQLite wrote anything (see SQLiteStore): a new store
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                raise CorruptStore(
                    f"{path} is not a tropic store (no tropic metadata); refusing to use or modify it",
                    path=str(path),
                )
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != FORMAT:
                raise CorruptStore(
                    f"{path} is not a tropic store (format {meta.get('format')!r})", path=str(path)
                )
            if int(meta.get("version", "0")) > VERSION:
                raise CorruptStore(f"{path} was written by a newer tropic (store version {meta['version']})")
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise CorruptStore(f"{path} is damaged (SQLite integrity check failed)", path=str(path))
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CorruptStore(f"{path} is not a tropic store: {e}", path=str(path)) from None
    return True


class SQLiteStore(Store):
    """``sqlite:///path/to/store.db``. Pipelined: :meth:`seal` runs on the logical thread, :meth:`write` on
    the controller's writer thread (:mod:`tropic.txn.writer`); :meth:`commit` does both at once."""

    pipelined = True

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "FULL", holder: Holder | None = None
    ) -> None:
        """Open (or create) the store and become its owner for as long as it is open; ``holder`` says who
        this process is (default: its pid and command) to any other process refused meanwhile."""
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        if self.path.is_dir():
            raise CorruptStore(f"{self.path} is a directory, not a tropic store", path=str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create store {self.path}: cannot make its folder ({e.strerror or e})",
                path=str(self.path),
            ) from None
        # Lock first: a refused opener has read nothing of a live store and changed nothing. A foreign
        # file is only looked at (read-only) and gets no holder file beside it.
        self._owner: OwnerLock | None = acquire(self.path, holder, what="store", announce=False)
        try:
            self.existed = _validate(self.path)
            self._owner.announce()
            self._conn = self._connect(synchronous)
        except BaseException:
            self._owner.release()
            raise
        self._txns: dict[int, Transaction] = {}
        self._nodes: list[tuple[str, Node | None]] = []
        self._fences: dict[str, int | None] = {}
        self._logged: set[int] = set()  # transactions whose action log and delta are stored
        self._keys = sqlite_keys.PendingKeys()  # idempotency keys bound, not yet written
        self.commits = 0
        self._write_lock = threading.Lock()
        self._checkpointer: _Checkpointer | None = _Checkpointer(self.path)
        # Reads of past transactions come from any thread: a connection of their own sees only what was
        # committed, and never waits for (or interleaves with) the writer's transaction.
        self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._read_lock = threading.Lock()
        # Retention reads from a connection of its own too: its scans never hold up the API's reads.
        self._retention_reader: sqlite3.Connection | None = None
        self._retention_lock = threading.Lock()
        self.archive: Archive | None = None  # where retention put the records it removed (tropic.retention)

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if not self.existed:  # before the file's header is written: free pages can be released later
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={AUTOCHECKPOINT_PAGES * 4096}")
            # Some builds (Debian's) default to secure_delete=ON: every removed or shrunk row is zeroed,
            # and each page it freed written once more (a retention batch of 1,000 records: 3x the time
            # and ~700 KB of log). FAST zeroes what is written anyway and nothing more.
            conn.execute("PRAGMA secure_delete=FAST")
            conn.executescript(SCHEMA)
            conn.executescript(sqlite_obs.SCHEMA)
            conn.executescript(sqlite_keys.SCHEMA)
            sqlite_keys.migrate(conn, time.time())
            if not self.existed:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("format", FORMAT), ("version", str(VERSION))],
                )
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {self.path}: {e}", path=str(self.path)) from None
        return conn

    # --- reading -----------------------------------------------------------------------------------
    def restore(self, schema: Schema) -> Restored | None:
        return _read(self._conn, schema)

    def restore_live(self, schema: Schema) -> Restored | None:
        """The model and the live records; the final ones stay on disk, counted by SQLite."""
        return _read(self._conn, schema, live_only=True)

    def has_model(self) -> bool:
        return _has_model(self._conn)

    def get_txn(self, txn_id: int) -> Transaction | None:
        try:
            with self._read_lock:
                row = self._reader.execute(
                    "SELECT record, actions, delta FROM txns WHERE id=?", (txn_id,)
                ).fetchone()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}", path=str(self.path)) from None
        if row is not None:
            return _record(*row)
        found = self.archive.find(txn_id) if self.archive is not None else None
        if found is not None:
            return Transaction.from_dict(found[0])
        if self.archive is not None and txn_id <= self._retired().last_id:
            raise UnknownTransaction(
                f"transaction {txn_id} was removed from the store by retention and is not in its archive "
                f"{self.archive.folder} (moved or deleted?)"
            )
        return None

    def find_txns(self, query: TxnQuery, extra: int = 0) -> list[Transaction]:
        """Scans the table down from the cursor (state and procedure filtered by SQLite, the others on the
        decoded records) in chunks, until the page is full."""
        want = query.limit + extra
        where, params = ["id < ?"], []
        if query.state is not None:
            where.append("state = ?")
            params.append(query.state.value)
        if query.procedure is not None:
            where.append("procedure = ?")
            params.append(query.procedure)
        sql = f"SELECT record FROM txns WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        chunk = max(want, 256)
        cursor = query.before if query.before is not None else 2**62
        out: list[Transaction] = []
        while len(out) < want:
            try:
                with self._read_lock:
                    rows = self._reader.execute(sql, (cursor, *params, chunk)).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"cannot read store {self.path}: {e}", path=str(self.path)) from None
            for (rec,) in rows:
                t = Transaction.from_dict(orjson.loads(rec))
                cursor = t.id
                if query.matches(t):
                    out.append(t)
                    if len(out) == want:
                        break
            if len(rows) < chunk:
                break
        return with_archived(out, self.archive, query, want)

    # --- retention (see tropic.retention and tropic.store.sqlite_retain) ----------------------------
    def retention_cut(self, max_count: int) -> int:
        """The id of the ``max_count``-th newest final record (a count policy keeps it and the newer
        ones), 0 when there are fewer."""
        try:
            with self._retention_lock:
                return sqlite_retain.cut(self._retention_conn(), max_count)
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}", path=str(self.path)) from None

    def retention_candidates(
        self, cut: int, ended_before: float | None, limit: int, after: int = 0
    ) -> sqlite_retain.Candidates:
        """Up to ``limit`` final records with ids above ``after``, oldest first, that a policy lets go:
        below ``cut`` (a range of the primary key, so a batch costs its own size), or (``ended_before``)
        ended before that time; never one a fence refers to. As archive lines, with their counts."""
        try:
            with self._retention_lock:
                return sqlite_retain.candidates(self._retention_conn(), cut, ended_before, limit, after)
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}", path=str(self.path)) from None

    def _retention_conn(self) -> sqlite3.Connection:
        if self._retention_reader is None:
            self._retention_reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        return self._retention_reader

    def remove_txns(self, ids: list[int], counts: History) -> None:
        """Remove these final records (archived first by the caller), adding ``counts`` (theirs) to the
        counts of removed records kept in ``meta``, in one SQLite transaction."""
        with self._write_lock:
            try:
                sqlite_retain.remove(self._conn, ids, counts)
            except sqlite3.Error as e:
                raise StoreError(f"cannot write store {self.path}: {e}", path=str(self.path)) from None

    def release_free_pages(self) -> int:
        """Give free pages back to the file system with an incremental vacuum, when more than a quarter
        of the file is free, down to a tenth (what a steady load reuses stays; what a shrunk history
        leaves is returned). Only stores created with ``auto_vacuum=INCREMENTAL`` (every store created
        since retention) can; returns the pages released."""
        with self._write_lock:
            try:
                conn = self._conn
                if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    return 0
                free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
                pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
                if free * 4 <= pages:
                    return 0
                release = -(-(10 * free - pages) // 9)  # leaves free <= a tenth of the smaller file
                conn.executescript(f"PRAGMA incremental_vacuum({release});")  # stepped to the end
                return release
            except sqlite3.Error as e:
                raise StoreError(f"cannot write store {self.path}: {e}", path=str(self.path)) from None

    def _retired(self) -> History:
        row = self._conn_read("SELECT value FROM meta WHERE key='retired'", ())
        return history_of(row[0][0] if row else None)

    def _conn_read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            with self._read_lock:
                return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}", path=str(self.path)) from None

    def count_by_state(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT state, COUNT(*) FROM txns GROUP BY state").fetchall())

    # --- observations (the knowledge base; see tropic.store.sqlite_obs) -----------------------------
    def append_observations(self, rows: Sequence[ObservationRow]) -> None:
        with self._write_lock, self._sql_errors("write"):
            sqlite_obs.append(self._conn, rows)

    def observations(
        self,
        subject_prefix: str = "",
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[ObservationRow]:
        with self._read_lock, self._sql_errors("read"):
            return sqlite_obs.query(self._reader, subject_prefix, metric, since, until, limit)

    def trim_observations(self, older_than: float | None = None, max_rows: int | None = None) -> int:
        with self._write_lock, self._sql_errors("write"):
            return sqlite_obs.trim(self._conn, older_than, max_rows)

    @contextlib.contextmanager
    def _sql_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(f"cannot {what} store {self.path}: {e}", path=str(self.path)) from None

    # --- writing -----------------------------------------------------------------------------------
    def init_model(self, model: Model) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        conn.execute("DELETE FROM nodes")
        conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?)",
            ((p, n.kind, _dumps(n.attrs)) for p, n in model.nodes.items()),
        )
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('model', 'yes')")
        conn.execute("COMMIT")

    def put_txn(self, txn: Transaction) -> None:
        self._txns[txn.id] = txn

    def bind_key(self, txn_id: int, kid: str, fingerprint: str) -> None:
        """Store idempotency key ``kid`` with transaction ``txn_id``'s first record (same SQLite
        transaction; see :mod:`tropic.store.sqlite_keys`)."""
        self._keys.bind(txn_id, kid, fingerprint)

    def lookup_key(self, kid: str) -> tuple[int, str] | None:
        """The committed transaction and request fingerprint of key ``kid``, or None."""
        with self._read_lock, self._sql_errors("read"):
            return sqlite_keys.lookup(self._reader, kid, self._keys.cutoff())

    def lookup_pending_key(self, kid: str) -> tuple[int, str] | None:
        """The transaction key ``kid`` is bound to while its first record waits to be written, or None."""
        return self._keys.lookup(kid)

    def set_key_ttl(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        """Idempotency keys live ``ttl`` seconds of ``clock`` (wall-clock: stored with each key)."""
        self._keys.ttl, self._keys.clock = ttl, clock

    def key_count(self) -> int:
        """Idempotency keys stored (expired ones a later write will delete included)."""
        with self._read_lock, self._sql_errors("read"):
            return sqlite_keys.count(self._reader)

    def put_delta(self, delta: Delta, *, revert: bool = False) -> None:
        items = delta.before if revert else delta.after
        self._nodes.extend(items.items())

    def put_fence(self, path: str, txn: int | None) -> None:
        self._fences[path] = txn

    def commit(self) -> None:
        batch = self.seal()
        if batch is not None:
            self.write([batch])

    def seal(self) -> _Batch | None:
        if not (self._txns or self._nodes or self._fences):
            return None
        txns, self._txns = self._txns, {}
        nodes, self._nodes = self._nodes, []
        fences, self._fences = self._fences, {}
        batch = _Batch(txns=[self._row(t) for t in txns.values()], fences=list(fences.items()))
        batch.keys = self._keys.take(txns)
        if nodes:
            # Later changes to the same path win.
            last: dict[str, Node | None] = {}
            for p, n in nodes:
                last[p] = n
            for p, n in last.items():
                if n is None:
                    batch.node_dels.append((p,))
                else:
                    batch.node_puts.append((p, n.kind, _dumps(n.attrs)))
        return batch

    def write(self, batches: Sequence[object]) -> None:
        conn = self._conn
        with self._write_lock:
            try:
                conn.execute("BEGIN")
                stored = 0
                for b in batches:
                    assert isinstance(b, _Batch)
                    if b.node_dels:
                        conn.executemany("DELETE FROM nodes WHERE path=?", b.node_dels)
                    if b.node_puts:
                        conn.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)", b.node_puts)
                    if b.txns:
                        conn.executemany(UPSERT, b.txns)
                    if b.keys:
                        conn.executemany(sqlite_keys.INSERT, b.keys)
                        stored += len(b.keys)
                    for path, txn in b.fences:
                        if txn is None:
                            conn.execute("DELETE FROM fences WHERE path=?", (path,))
                        else:
                            conn.execute("INSERT OR REPLACE INTO fences VALUES (?, ?)", (path, txn))
                if stored:  # more expired keys go than new ones come: the table stays about a TTL's worth
                    sqlite_keys.expire(conn, self._keys.cutoff(), max(sqlite_keys.EXPIRE_BATCH, 2 * stored))
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot write store {self.path}: {e}", path=str(self.path)) from None
            self.commits += 1
            for b in batches:
                assert isinstance(b, _Batch)
                self._keys.written(b.keys)

    def _row(self, t: Transaction) -> tuple[Any, ...]:
        """The action log and delta are written once, when the transaction starts; later writes carry
        only the small record (state, times, step outcomes). A final record drops the delta."""
        actions = delta = None
        if t.final:
            logged = t.id in self._logged
            self._logged.discard(t.id)
            if t.actions and not logged:
                actions = _dumps([a.to_dict() for a in t.actions])
        elif t.delta is not None and t.id not in self._logged:
            actions = _dumps([a.to_dict() for a in t.actions])
            delta = _dumps(t.delta.to_dict())
            self._logged.add(t.id)
        return (
            t.id,
            t.state.value,
            t.procedure,
            t.submitter,
            _dumps(t.to_dict(actions=False)),
            actions,
            delta,
        )

    def close(self) -> None:
        """Close the store and give up its ownership (another process may open it from then on)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        with contextlib.suppress(sqlite3.Error):
            self._reader.close()
        with self._retention_lock, contextlib.suppress(sqlite3.Error):
            if self._retention_reader is not None:
                self._retention_reader.close()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._owner is not None:
            self._owner.release()
            self._owner = None


def _has_model(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM meta WHERE key='model'").fetchone() is not None


def _record(rec: str, actions: str | None, delta: str | None) -> Transaction:
    d = orjson.loads(rec)
    if actions is not None:
        d["actions"] = orjson.loads(actions)
    if delta is not None:
        d["delta"] = orjson.loads(delta)
    return Transaction.from_dict(d)


def _read(conn: sqlite3.Connection, schema: Schema, *, live_only: bool = False) -> Restored | None:
    """The model, every record (``live_only``: the live ones, the others summed up) and the fences
    (None for a store without a model yet)."""
    if not _has_model(conn):
        return None
    model = Model(schema)
    nodes = model.nodes
    kids = model.kids
    loads = orjson.loads
    for path, kind, attrs in conn.execute("SELECT path, kind, attrs FROM nodes"):
        nodes[path] = Node(kind, loads(attrs))
        if path != "/":
            parent = parent_of(path)
            s = kids.get(parent)
            if s is None:
                kids[parent] = s = set()
            s.add(path.rsplit("/", 1)[1])
    where = f" WHERE state NOT IN ({FINAL_STATES})" if live_only else ""
    sql = f"SELECT record, actions, delta FROM txns{where} ORDER BY id"
    txns = [_record(*row) for row in conn.execute(sql)]
    fenced = {p: int(t) for p, t in conn.execute("SELECT path, txn FROM fences")}
    return Restored(model, txns, fenced, _summary(conn) if live_only else None)


def _summary(conn: sqlite3.Connection) -> History:
    """The counts of every record, read by SQLite without loading them into Python, plus those of the
    records retention removed (kept in ``meta``)."""
    row = conn.execute("SELECT value FROM meta WHERE key='retired'").fetchone()
    h = history_of(row[0] if row else None)
    h.last_id = max(h.last_id, conn.execute("SELECT COALESCE(MAX(id), 0) FROM txns").fetchone()[0])
    rows = conn.execute(
        "SELECT state, json_extract(record, '$.times.ROLLING_BACK') IS NOT NULL,"
        " json_extract(record, '$.times.KILLED') IS NOT NULL,"
        " COUNT(*), COALESCE(SUM(json_extract(record, '$.deferrals')), 0)"
        " FROM txns GROUP BY 1, 2, 3"
    )
    for state, rolled, killed, n, deferrals in rows:
        times = [name for name, seen in (("ROLLING_BACK", rolled), ("KILLED", killed)) if seen]
        h.count(state, int(deferrals), times, n)
    return h


def read_snapshot(path: str | os.PathLike[str], schema: Schema) -> Restored | None:
    """What a store holds, read without writing anything and without its lock (a live store's owner
    goes on meanwhile): one SQLite read transaction on a ``mode=ro`` connection, so the model, the records
    and the fences are of one instant (WAL readers see the last commit before they began)."""
    where = Path(path)
    if not _validate(where):
        raise StoreError(f"no tropic store at {where}", path=str(where))
    try:
        conn = sqlite3.connect(f"{where.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("BEGIN")
            try:
                return _read(conn, schema)
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise StoreError(f"cannot read store {where}: {e}", path=str(where)) from None


UPSERT = """
INSERT INTO txns (id, state, procedure, submitter, record, actions, delta) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state,
    record = excluded.record,
    actions = COALESCE(excluded.actions, txns.actions),
    delta = CASE WHEN excluded.state IN ('COMMITTED', 'ABORTED', 'FAILED') THEN NULL
                 ELSE COALESCE(excluded.delta, txns.delta) END
"""
