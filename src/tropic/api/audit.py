"""The audit log: who submitted or killed what, when, as append-only JSON lines.

Entries name the token's *name* and role (never its secret). The file is only ever appended to; each line
is flushed (and by default fsynced) before the API answers, so an accepted request is on disk. Concurrent
records share one fsync: a writer whose line another thread's fsync already covered does not sync again
(group commit, as the store does). :meth:`record_later` hands entries to a writer thread and returns a
future, so the API's event loop never blocks on the disk. Without a file the log is kept in memory (tests,
throwaway servers); the newest entries are always readable.

The file rotates by size: a write that would take it beyond ``max_bytes`` first renames ``PATH`` to
``PATH.1`` (``PATH.1`` to ``PATH.2``, ..., dropping ``PATH.<keep_files>``) and starts a new ``PATH``. The
rotation happens under the writers' lock, after an fsync of the old file and followed by an fsync of the
directory, so no entry is lost or written twice, and the newest entries (:meth:`entries`) are read back
across the rotated files on start-up.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from tropic.api.auth import Principal
from tropic.errors import ConfigError

Entry = dict[str, Any]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024  # rotate the file beyond 100 MiB ...
DEFAULT_KEEP_FILES = 10  # ... and keep this many rotated files (PATH.1 newest ... PATH.10 oldest)


class AuditLog:
    """Append-only record of mutating API requests (accepted and refused)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        fsync: bool = True,
        keep: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep_files: int = DEFAULT_KEEP_FILES,
    ):
        """``keep``: entries kept in memory for :meth:`entries`; ``max_bytes``: size beyond which the file
        rotates; ``keep_files``: rotated files kept. Bad values or a file that cannot be opened raise
        :class:`~tropic.errors.ConfigError` here, never at a later write."""
        if max_bytes < 1:
            raise ConfigError(f"the audit log's maximum size must be at least 1 byte, not {max_bytes}")
        if keep_files < 1:
            raise ConfigError(f"the audit log must keep at least 1 rotated file, not {keep_files}")
        self.path = None if path is None else Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self._size = 0  # bytes in the current file
        self._lock = threading.Lock()  # the file and the recent entries
        self._sync = threading.Condition()  # who syncs, and how far the file is synced
        self._written = 0  # lines written (flushed to the OS) ...
        self._synced = 0  # ... and made durable by an fsync
        self._syncing = False
        self._later: queue.SimpleQueue[tuple[list[Entry], Future[None]] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._recent: deque[Entry] = deque(maxlen=keep)
        self._file: IO[str] | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends
                self._size = self._file.tell()
                if self._size > 0 and not self._ends_with_newline():
                    self._file.write("\n")  # after a torn last line, the next entry starts a line of its own
                    self._file.flush()
                    self._size += 1
                if not os.access(self.path.parent, os.W_OK | os.X_OK):  # rotation renames in the folder
                    raise PermissionError(f"folder {self.path.parent} is not writable")
                self._load_recent()
            except OSError as e:
                if self._file is not None:
                    self._file.close()
                    self._file = None
                raise ConfigError(f"cannot use {self.path} as the audit log: {e}") from e

    def _ends_with_newline(self) -> bool:
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def rotated(self, n: int) -> Path:
        """The ``n``-th rotated file (1: the newest)."""
        assert self.path is not None
        return self.path.with_name(f"{self.path.name}.{n}")

    def _load_recent(self) -> None:
        """The newest ``keep`` entries, from the current file then the rotated ones, newest first."""
        assert self.path is not None
        need = self._recent.maxlen or 0
        files: list[list[Entry]] = []
        count = 0
        for p in [self.path] + [self.rotated(n) for n in range(1, self.keep_files + 1)]:
            if count >= need or not p.exists():
                break
            files.append(self._read(p))
            count += len(files[-1])
        for entries in reversed(files):
            self._recent.extend(entries)

    @staticmethod
    def _read(path: Path) -> list[Entry]:
        entries: list[Entry] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash: skip it, keep appending after it
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def record(
        self,
        who: Principal,
        action: str,
        outcome: str,
        *,
        details: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Append one entry: ``action`` (submit, kill, ...) by ``who``, ``outcome`` (accepted, refused,
        denied) and the request's details (transaction id, procedure, arguments, error code)."""
        return self.record_many(who, action, outcome, [details or {}])[0]

    def record_many(
        self, who: Principal, action: str, outcome: str, details: Sequence[Mapping[str, Any]]
    ) -> list[Entry]:
        """Append one entry per item of ``details`` (as :meth:`record` does), with one write and one sync."""
        entries = self._entries(who, action, outcome, details)
        self._append(entries)
        return entries

    @staticmethod
    def _entries(
        who: Principal, action: str, outcome: str, details: Sequence[Mapping[str, Any]]
    ) -> list[Entry]:
        now = time.time()
        entries: list[Entry] = []
        for d in details:
            entry: Entry = {"ts": now, "who": who.name, "role": who.role.value, "action": action}
            entry["outcome"] = outcome
            entry.update(d)
            entries.append(entry)
        return entries

    def record_later(
        self, who: Principal, action: str, outcome: str, details: Sequence[Mapping[str, Any]]
    ) -> Future[None]:
        """As :meth:`record_many`, on the log's writer thread: the future is done once the entries are on
        disk (the entries written meanwhile by other callers share that write and its fsync)."""
        fut: Future[None] = Future()
        if self._file is None:
            self._append(self._entries(who, action, outcome, details))
            fut.set_result(None)
            return fut
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_later, name="audit-writer", daemon=True)
                self._writer.start()
        self._later.put((self._entries(who, action, outcome, details), fut))
        return fut

    def _write_later(self) -> None:
        while True:
            first = self._later.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    more = self._later.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._later.put(None)  # stop after this batch
                    break
                batch.append(more)
            try:
                self._append([e for entries, _ in batch for e in entries])
            except BaseException as e:  # handed to every waiting caller
                for _, fut in batch:
                    fut.set_exception(e)
            else:
                for _, fut in batch:
                    fut.set_result(None)

    def _append(self, entries: list[Entry]) -> None:
        text = "".join(json.dumps(e, sort_keys=True, default=str, allow_nan=False) + "\n" for e in entries)
        size = len(text.encode())
        with self._lock:
            if self._file is not None:
                if self._size > 0 and self._size + size > self.max_bytes:
                    self._rotate()
                self._file.write(text)
                self._file.flush()
                self._size += size
                self._written += 1
            mine = self._written
            self._recent.extend(entries)
        if self._file is not None and self.fsync:
            self._sync_upto(mine)

    def _rotate(self) -> None:
        """Under the lock: sync and close the current file, shift the rotated ones, start a new file."""
        assert self._file is not None and self.path is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())  # what it holds is durable before it is renamed
        self._file.close()
        try:
            self.rotated(self.keep_files).unlink(missing_ok=True)
            for n in range(self.keep_files - 1, 0, -1):
                if self.rotated(n).exists():
                    os.replace(self.rotated(n), self.rotated(n + 1))
            os.replace(self.path, self.rotated(1))
        finally:  # a failed rotation (the error goes to the caller) leaves a file to append to
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends
            self._size = self._file.tell()
        if self.fsync:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the renames and the new file survive a crash
            finally:
                os.close(dfd)

    def _sync_upto(self, mine: int) -> None:
        """Return once write ``mine`` is on disk: one thread syncs for everyone waiting meanwhile."""
        with self._sync:
            while self._synced < mine:
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing = True
                with self._lock:
                    target = self._written
                    # a duplicate: a rotation may close the file meanwhile (it syncs it first itself)
                    fd = -1 if self._file is None else os.dup(self._file.fileno())
                try:
                    self._sync.release()
                    try:
                        if fd >= 0:
                            try:
                                os.fsync(fd)
                            finally:
                                os.close(fd)
                    finally:
                        self._sync.acquire()
                    self._synced = max(self._synced, target)
                finally:
                    self._syncing = False
                    self._sync.notify_all()

    def entries(self, limit: int | None = None) -> list[Entry]:
        """The newest entries, oldest first."""
        with self._lock:
            items = list(self._recent)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def close(self) -> None:
        writer = self._writer
        if writer is not None:
            self._later.put(None)
            writer.join(30)
            self._writer = None
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
