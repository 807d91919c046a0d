"""The audit log: who submitted or killed what, when, as append-only JSON lines.

Entries name the token's *name* and role (never its secret). The file is only ever appended to; each line
is flushed (and by default fsynced) before the API answers, so an accepted request is on disk. Without a
file the log is kept in memory (tests, throwaway servers); the newest entries are always readable.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tropic.api.auth import Principal

Entry = dict[str, Any]


class AuditLog:
    """Append-only record of mutating API requests (accepted and refused)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, fsync: bool = True, keep: int = 10_000):
        self.path = None if path is None else Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._recent: deque[Entry] = deque(maxlen=keep)
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for appends
            self._load_recent()

    def _load_recent(self) -> None:
        assert self.path is not None
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash: skip it, keep appending after it
                if isinstance(entry, dict):
                    self._recent.append(entry)

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
        entry: Entry = {"ts": time.time(), "who": who.name, "role": who.role.value, "action": action}
        entry["outcome"] = outcome
        if details:
            entry.update(details)
        line = json.dumps(entry, sort_keys=True, default=str, allow_nan=False)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            self._recent.append(entry)
        return entry

    def entries(self, limit: int | None = None) -> list[Entry]:
        """The newest entries, oldest first."""
        with self._lock:
            items = list(self._recent)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
