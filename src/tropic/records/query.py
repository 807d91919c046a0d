"""Queries over transaction history: the filters and the cursor every reader of past transactions uses
(the API, the CLI, the dashboard), answered by the stores (:meth:`tropic.store.base.Store.find_txns`)
and merged with the live records by the controller.

Pages are newest first. The cursor is an id: a page holds transactions with a smaller id than
``before``, and the next page starts below the last id of this one, so paging finds every record once
whatever is added meanwhile (new transactions have larger ids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tropic.errors import InvalidArguments
from tropic.records.record import Transaction
from tropic.records.states import State

MAX_LIMIT = 10_000  # records in one page (the API serves at most 1,000)


@dataclass(frozen=True, slots=True)
class TxnQuery:
    """Which transactions: every filter given must match (``path``: the transaction locked, or named in
    its arguments, this resource, an ancestor of it, or something under it; ``since``/``until``: its
    submission time, in seconds since the epoch, ``since <= t < until``)."""

    state: State | None = None
    procedure: str | None = None
    path: str | None = None
    since: float | None = None
    until: float | None = None
    before: int | None = None  # cursor: only ids below this one
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidArguments(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        for name, at in (("since", self.since), ("until", self.until)):
            if at is not None and not math.isfinite(at):
                raise InvalidArguments(f"{name} must be a finite time in seconds, got {at}")
        if self.path is not None and not self.path.startswith("/"):
            raise InvalidArguments(f"resource path must start with '/', got {self.path!r}")

    def matches(self, t: Transaction) -> bool:
        """Whether ``t`` passes every filter (the cursor included)."""
        if self.before is not None and t.id >= self.before:
            return False
        if self.state is not None and t.state is not self.state:
            return False
        if self.procedure is not None and t.procedure != self.procedure:
            return False
        if self.since is not None or self.until is not None:
            at = t.times.get(State.SUBMITTED.value)
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        return self.path is None or touches(t, self.path)


def touches(t: Transaction, path: str) -> bool:
    """Whether ``t`` locked ``path``, an ancestor or a descendant of it, or names one in its arguments
    (so a transaction refused before it took locks is found by the resources it was about)."""
    named = [v for v in t.args.values() if isinstance(v, str) and v.startswith("/")]
    for p in (*t.reads, *t.writes, *named):
        if p == path or p == "/" or path == "/" or p.startswith(path + "/") or path.startswith(p + "/"):
            return True
    return False


def merge(live: list[Transaction], stored: list[Transaction], query: TxnQuery) -> list[Transaction]:
    """One page from the live records (the freshest copies) and a store's page: live ids win over their
    stored copy; newest first, at most ``query.limit``. ``stored`` must have been asked for
    ``query.limit`` plus the number of live ids, so that dropping the stale copies leaves enough."""
    ids = {t.id for t in live}
    rows = [t for t in live if query.matches(t)]
    rows.extend(t for t in stored if t.id not in ids)
    rows.sort(key=lambda t: t.id, reverse=True)
    return rows[: query.limit]
