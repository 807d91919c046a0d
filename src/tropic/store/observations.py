"""Observation rows: the store's side of the autopilot's knowledge base.

A row is plain data, ``(subject, metric, value, at, source)`` (the fields of
:class:`tropic.autopilot.base.Observation`, in its order), so the store layer needs nothing from the
autopilot. Every store keeps them as a bounded time series:
:meth:`~tropic.store.base.Store.append_observations` (one write per pass),
:meth:`~tropic.store.base.Store.observations` (a query) and
:meth:`~tropic.store.base.Store.trim_observations` (retention by age and size, run by the knowledge base).
:class:`MemoryObservations` is the in-process implementation (``memory://`` and stores without a durable
one); the SQLite and ZooKeeper stores keep theirs in :mod:`~tropic.store.sqlite_obs` and
:mod:`~tropic.store.zk_obs`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

from tropic.errors import InvalidArguments

ObservationRow = tuple[str, str, float, float, str]  # subject, metric, value, at (Unix s), source

MAX_LIMIT = 1_000_000  # rows one query may return


def check_rows(rows: Iterable[ObservationRow]) -> list[ObservationRow]:
    """The rows as tuples of the right types; :class:`InvalidArguments` names the first bad one (an empty
    subject or metric, a value or time that is not a finite number)."""
    out: list[ObservationRow] = []
    for i, row in enumerate(rows):
        try:
            subject, metric, value, at, source = row
            item = (str(subject), str(metric), float(value), float(at), str(source))
        except (TypeError, ValueError):
            raise InvalidArguments(
                f"observation {i}: expected (subject, metric, value, at, source), got {row!r}"
            ) from None
        if not item[0] or not item[1]:
            raise InvalidArguments(f"observation {i}: empty subject or metric in {row!r}")
        if not (math.isfinite(item[2]) and math.isfinite(item[3])) or item[3] < 0:
            raise InvalidArguments(
                f"observation {i}: value and time must be finite numbers (time: Unix seconds), got {row!r}"
            )
        out.append(item)
    return out


def check_query(limit: int, since: float | None, until: float | None) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArguments(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if since is not None and until is not None and until < since:
        raise InvalidArguments(f"until ({until}) is before since ({since})")


def check_trim(older_than: float | None, max_rows: int | None) -> None:
    if max_rows is not None and max_rows < 0:
        raise InvalidArguments(f"max_rows must be 0 or more, not {max_rows}")
    if older_than is not None and not math.isfinite(older_than):
        raise InvalidArguments(f"older_than must be a finite time, not {older_than}")


def matches(
    row: ObservationRow, prefix: str, metric: str | None, since: float | None, until: float | None
) -> bool:
    return (
        row[0].startswith(prefix)
        and (metric is None or row[1] == metric)
        and (since is None or row[3] >= since)
        and (until is None or row[3] < until)
    )


def newest(rows: Iterable[ObservationRow], limit: int) -> list[ObservationRow]:
    """The ``limit`` newest rows, oldest first (ties kept in the order they came)."""
    ordered = sorted(rows, key=lambda r: r[3])
    return ordered[-limit:]


class MemoryObservations:
    """Observation rows in a list, in this process only (thread-safe)."""

    def __init__(self) -> None:
        self._rows: list[ObservationRow] = []
        self._lock = threading.Lock()

    def append(self, rows: Sequence[ObservationRow]) -> None:
        checked = check_rows(rows)
        with self._lock:
            self._rows.extend(checked)

    def query(
        self, prefix: str, metric: str | None, since: float | None, until: float | None, limit: int
    ) -> list[ObservationRow]:
        check_query(limit, since, until)
        with self._lock:
            found = [r for r in self._rows if matches(r, prefix, metric, since, until)]
        return newest(found, limit)

    def trim(self, older_than: float | None, max_rows: int | None) -> int:
        check_trim(older_than, max_rows)
        with self._lock:
            before = len(self._rows)
            rows = self._rows
            if older_than is not None:
                rows = [r for r in rows if r[3] >= older_than]
            if max_rows is not None and len(rows) > max_rows:
                rows = sorted(rows, key=lambda r: r[3])[len(rows) - max_rows :]
            self._rows = rows
            return before - len(rows)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)
