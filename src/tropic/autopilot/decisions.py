"""The decision log: one :class:`Decision` per autopilot pass, bounded by count, kept in the controller's
store (:mod:`tropic.autopilot.decision_store`) so that it survives a restart and a leader failover.

Every pass records what it saw (the digest of its snapshot), the policy, the predicted gain and cost,
the plan, the transactions it ran and how each ended, and why it did nothing when it did nothing (paused,
below the hysteresis, every move held by a guard, the policy timed out or failed). Each decision also
keeps the hosts' predicted CPU utilisation at that pass, which the dashboard plots over time.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

log = logging.getLogger("tropic.autopilot")

DEFAULT_CAPACITY = 500  # decisions kept (oldest dropped first)

# What a pass ended as.
ACTED = "acted"  # ran transactions (some may have failed: see the steps)
IDLE = "idle"  # nothing to do, or nothing allowed: see ``why``
DRY_RUN = "dry-run"  # would have run the steps listed
ERROR = "error"  # the policy or the snapshot failed: see ``why``


@dataclass(slots=True)
class StepOutcome:
    """One transaction of a pass: the procedure and arguments, its idempotency key, the transaction id
    (None in a dry run) and how it ended (``COMMITTED``, ``ABORTED``, ``FAILED``, or ``would run``)."""

    procedure: str
    args: dict[str, Any]
    key: str
    txn: int | None = None
    state: str = ""
    error: str = ""

    @property
    def committed(self) -> bool:
        return self.state == "COMMITTED"


@dataclass(slots=True)
class Decision:
    pass_id: str
    at: float  # the snapshot's time (Unix seconds)
    trigger: str  # "periodic", "hot:/compute/r1/host-01", "run-once", "resume"...
    policy: str
    digest: str  # of the snapshot the pass planned from
    status: str = IDLE
    why: str = ""
    gain: float = 0.0
    cost: float = 0.0
    plan: dict[str, Any] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)  # moves a guard held back, with the guard's reason
    steps: list[StepOutcome] = field(default_factory=list)
    solve_s: float = 0.0
    utilisation: dict[str, float] = field(default_factory=dict)  # host -> predicted CPU demand / cpus
    stale: list[str] = field(default_factory=list)  # hosts and VMs whose sensors are stale (left alone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        """The decision :meth:`to_dict` gave (as read back from the store)."""
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        fields["steps"] = [StepOutcome(**s) for s in d.get("steps", [])]
        return cls(**fields)


class DecisionBook(Protocol):
    """Where decisions are kept durably (:mod:`tropic.autopilot.decision_store`)."""

    def put_decision(self, doc: dict[str, Any]) -> None:
        """Keep one decision (as :meth:`Decision.to_dict` gives it); retention runs here."""

    def get_decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` decisions kept, oldest first."""


class DecisionLog:
    """The last ``capacity`` decisions, newest last; thread-safe. With a ``book`` (the controller's store),
    each decision is written there as it is recorded, and the log starts from what the book holds: the
    decisions survive a restart and a leader failover."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, book: DecisionBook | None = None) -> None:
        if capacity < 1:
            raise ValueError("the decision log keeps at least one decision")
        self._items: deque[Decision] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.book = book
        self.total = 0  # decisions recorded since start (including the ones dropped)
        self.write_errors = 0  # decisions the book could not keep (logged; the pass goes on)
        if book is not None:
            for doc in book.get_decisions(capacity):
                try:
                    self._items.append(Decision.from_dict(doc))
                except (TypeError, KeyError, ValueError):
                    log.warning("decision log: a stored decision is unreadable; skipped")

    @property
    def capacity(self) -> int:
        maxlen = self._items.maxlen
        assert maxlen is not None
        return maxlen

    def add(self, decision: Decision) -> Decision:
        level = logging.WARNING if decision.status == ERROR else logging.INFO
        log.log(
            level,
            "autopilot pass %s (%s): %s: %s",
            decision.pass_id,
            decision.policy,
            decision.status,
            decision.why,
        )
        with self._lock:
            self._items.append(decision)
            self.total += 1
        if self.book is not None:
            try:
                self.book.put_decision(decision.to_dict())
            except Exception:  # the pass's transactions ran: a lost log line must not undo them
                self.write_errors += 1
                log.exception("decision log: cannot keep decision %s in the store", decision.pass_id)
        return decision

    def recent(self, limit: int | None = None) -> list[Decision]:
        """The newest ``limit`` decisions (all kept when None), oldest first."""
        with self._lock:
            items = list(self._items)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def last(self) -> Decision | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
