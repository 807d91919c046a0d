"""Transaction states and the only legal transitions between them (see ARCHITECTURE.md).

Nothing moves a transaction except :func:`move`, which refuses any pair not in :data:`TRANSITIONS`.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Protocol

from tropic.errors import IllegalTransition


class State(StrEnum):
    SUBMITTED = "SUBMITTED"
    DEFERRED = "DEFERRED"
    STARTED = "STARTED"
    ROLLING_BACK = "ROLLING_BACK"
    COMMITTED = "COMMITTED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"
    KILLED = "KILLED"


FINAL = frozenset({State.COMMITTED, State.ABORTED, State.FAILED})
# Not final: queued, waiting for locks, on the devices, being undone, or killed and about to be undone.
LIVE = frozenset(set(State) - FINAL)

TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (State.SUBMITTED, State.DEFERRED),  # lock conflict: parked, retried when locks are released
        (State.DEFERRED, State.SUBMITTED),  # retried, in FIFO order with the other deferred ones
        (State.SUBMITTED, State.ABORTED),  # constraint violation or procedure error in simulation
        (State.SUBMITTED, State.STARTED),  # simulated, checked, locked: physical steps begin
        (State.STARTED, State.COMMITTED),  # every physical step succeeded
        (State.STARTED, State.ROLLING_BACK),  # a step failed: undo completed steps in reverse
        (State.ROLLING_BACK, State.ABORTED),  # every undo succeeded; logical changes undone
        (State.ROLLING_BACK, State.FAILED),  # an undo failed: resources left behind are fenced
        (State.SUBMITTED, State.KILLED),  # operator or watchdog kill before simulation
        (State.DEFERRED, State.KILLED),  # kill while waiting for locks
        (State.STARTED, State.KILLED),  # kill during physical execution
        (State.KILLED, State.ABORTED),  # killed before any device was touched
        (State.KILLED, State.ROLLING_BACK),  # killed after steps ran: roll back as after a failure
    }
)


class HasState(Protocol):
    state: State
    times: dict[str, float]


def move(txn: HasState, new: State) -> None:
    """Move ``txn`` to ``new``, stamping the first time it enters that state; refuse an illegal move."""
    old = txn.state
    if (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"illegal transition {old.value} -> {new.value}")
    txn.state = new
    txn.times.setdefault(new.value, time.time())  # first entry into each state (latency from submit)
