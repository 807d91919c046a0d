"""The events the logical thread takes from its queue, one small type per kind.

Clients, workers and the store writer never touch the logical thread's state: they put one of these on
its queue, and the loop (:mod:`tropic.txn.loop`) dispatches on the type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tropic.records.record import Transaction


@dataclass(frozen=True, slots=True)
class Submit:
    """A client submitted ``txn`` (validated, not yet stored)."""

    txn: Transaction


@dataclass(frozen=True, slots=True)
class Finished:
    """A worker is done with ``txn``'s physical work (committed steps, or a finished rollback)."""

    txn: Transaction


@dataclass(frozen=True, slots=True)
class RollbackStarts:
    """A worker is about to undo ``txn``'s steps; it waits for ``stored`` (set once "rolling back" is
    durable) before its first undo."""

    txn: Transaction
    stored: threading.Event


@dataclass(frozen=True, slots=True)
class Kill:
    """A client asked to kill ``txn`` (its ``kill_requested`` is already set)."""

    txn: Transaction


@dataclass(frozen=True, slots=True)
class Resume:
    """The controller started: retry restored deferred work, dispatch restored in-flight work."""


@dataclass(slots=True)
class Reply:
    """Where the logical thread leaves the outcome of a :class:`Call` for the caller's thread."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """Run ``fn`` on the logical thread (the model's only owner) after the batch's work; reply in
    ``reply``."""

    fn: Callable[[], Any]
    reply: Reply = field(default_factory=Reply)


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop taking work; the loop ends once nothing is in flight."""


@dataclass(frozen=True, slots=True)
class Durable:
    """The store writer made another batch durable: announce it."""


Event = Submit | Finished | RollbackStarts | Kill | Resume | Call | Stop | Durable
