"""The knowledge base: bounded time series of observations, kept in the controller's store.

Every pass's readings go to the store in one write (:meth:`KnowledgeBase.record`), so they survive a
restart (SQLite) and a leader failover (ZooKeeper: the new leader reads what the old one wrote). The
recent window of each series is also kept in memory, which is what the predictor reads; a new leader
fills it from the store once (:meth:`KnowledgeBase.load`).

Retention (:class:`Retention`) bounds the store by age and by size; it runs at most every
``trim_every_s`` seconds of the caller's clock, so a pass costs one write most of the time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tropic.autopilot.base import Observation
from tropic.errors import ConfigError
from tropic.store.base import Store

Key = tuple[str, str]  # (subject, metric)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much the store keeps: readings younger than ``max_age_s`` (default one day: a day of history
    is what a diurnal pattern needs) and at most ``max_rows`` (default 2,000,000: a day of 5-minute
    readings of about 3,500 subjects x 2 metrics; at ~100 bytes a row, ~200 MB). ``window``: readings per
    series kept in memory for the predictor (default 24: two hours of 5-minute passes), which a new leader
    reads back from the last ``load_lookback_s`` seconds (default those two hours)."""

    max_age_s: float = 86_400.0
    max_rows: int = 2_000_000
    trim_every_s: float = 300.0
    window: int = 24
    load_lookback_s: float = 7_200.0

    def __post_init__(self) -> None:
        if not (self.max_age_s > 0 and math.isfinite(self.max_age_s)):
            raise ConfigError(
                f"retention max_age_s must be a positive number of seconds, not {self.max_age_s}"
            )
        if self.max_rows < 1:
            raise ConfigError(f"retention max_rows must be at least 1, not {self.max_rows}")
        if self.window < 1:
            raise ConfigError(f"knowledge base window must be at least 1 reading, not {self.window}")
        if self.trim_every_s < 0:
            raise ConfigError(f"retention trim_every_s must be 0 or more, not {self.trim_every_s}")


class KnowledgeBase:
    """Observations of one controller, in ``store`` (see the module docstring). Use from one thread (the
    coordinator's); queries of the store are safe from any thread."""

    def __init__(self, store: Store, retention: Retention | None = None) -> None:
        self.store = store
        self.retention = retention or Retention()
        self._series: dict[Key, deque[tuple[float, float]]] = {}
        self._trimmed_at: float | None = None
        self.removed = 0  # rows retention removed (this process)

    # --- writing -----------------------------------------------------------------------------------
    def record(self, observations: Sequence[Observation], now: float) -> None:
        """Keep a pass's readings: one store write, then the in-memory windows; trim when due."""
        if observations:
            self.store.append_observations(
                [(o.subject, o.metric, o.value, o.at, o.source) for o in observations]
            )
            for o in observations:
                self._remember(o.subject, o.metric, o.at, o.value)
        if self._trimmed_at is None or now - self._trimmed_at >= self.retention.trim_every_s:
            self.trim(now)

    def trim(self, now: float) -> int:
        """Apply retention now; returns how many rows went."""
        r = self.retention
        n = self.store.trim_observations(older_than=now - r.max_age_s, max_rows=r.max_rows)
        # In memory too: a series with nothing younger than the retention age is a subject that is gone
        # (a VM destroyed or moved to another path, a host removed).
        cut = now - r.max_age_s
        for key in [k for k, q in self._series.items() if not q or q[-1][0] < cut]:
            del self._series[key]
        self._trimmed_at = now
        self.removed += n
        return n

    def _remember(self, subject: str, metric: str, at: float, value: float) -> None:
        key = (subject, metric)
        q = self._series.get(key)
        if q is None:
            q = self._series[key] = deque(maxlen=self.retention.window)
        if q and at < q[-1][0]:  # late reading: keep the window in time order
            items = sorted([*q, (at, value)])
            q.clear()
            q.extend(items[-self.retention.window :])
        else:
            q.append((at, value))

    # --- reading -----------------------------------------------------------------------------------
    def load(self, now: float, *, lookback_s: float | None = None, limit: int = 1_000_000) -> int:
        """Fill the in-memory windows from the store (a new leader, a restart): the readings of the last
        ``lookback_s`` seconds (default: the retention's ``load_lookback_s``). Returns how many rows were
        read."""
        since = now - (lookback_s if lookback_s is not None else self.retention.load_lookback_s)
        rows = self.store.observations(since=since, limit=limit)
        self._series.clear()
        for subject, metric, value, at, _ in rows:
            self._remember(subject, metric, at, value)
        return len(rows)

    def series(self, subject: str, metric: str) -> list[tuple[float, float]]:
        """The in-memory window of one series: (time, value), oldest first."""
        return list(self._series.get((subject, metric), ()))

    def subjects(self, metric: str) -> list[str]:
        return sorted(s for s, m in self._series if m == metric)

    def query(
        self,
        subject_prefix: str = "",
        metric: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[Observation]:
        """Readings from the store (see :meth:`tropic.store.base.Store.observations`)."""
        return [
            Observation(*row) for row in self.store.observations(subject_prefix, metric, since, until, limit)
        ]
