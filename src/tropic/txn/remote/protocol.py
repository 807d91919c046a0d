"""What the leader and the worker processes exchange through ZooKeeper in distributed mode.

The nodes (their paths are :class:`tropic.store.zk.Paths`): the leader's store puts every batch of
started transactions on the physical queue (``/phys/queue/<seq>``, written in the same multi as their
STARTED records and action logs, ``/wal/<seq>``); a worker claims an entry with an ephemeral
``/phys/claims/<seq>``, records the per-step progress of its transactions in ``/phys/progress/<seq>``
(one object per transaction id, see :func:`progress_of`), and reports finished transactions in
``/phys/done/<name>`` (a list of the same objects with ``id`` and ``batch``); kill requests are ephemeral
``/phys/kill/<txn>`` nodes. This module encodes and decodes those objects for both sides.
"""

from __future__ import annotations

from typing import Any

import orjson

from tropic.model import ActionRecord
from tropic.records.record import StepOutcome, Transaction
from tropic.records.states import FINAL, State, move


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def progress_of(t: Transaction) -> dict[str, Any]:
    """What a worker records of ``t``'s physical work: state, step outcomes, error, what a failed
    rollback left behind, and when it was killed or started rolling back (by the worker's clock)."""
    return {
        "state": t.state.value,
        "steps": [s.to_dict() for s in t.steps],
        "error": t.error,
        "left_behind": t.left_behind,
        "times": {k: v for k, v in t.times.items() if k in (State.KILLED.value, State.ROLLING_BACK.value)},
    }


def queued_transaction(item: dict[str, Any], progress: dict[str, Any] | None) -> Transaction:
    """A worker's copy of a queued transaction, at the point its recorded progress says."""
    t = Transaction(int(item["id"]), str(item["procedure"]), dict(item["args"]))
    t.state = State.STARTED
    t.times = {k: float(v) for k, v in item.get("times", {}).items()}
    t.actions = [ActionRecord.from_dict(a) for a in item["actions"]]
    if progress:
        t.state = State(progress["state"])
        t.steps = [StepOutcome.from_dict(s) for s in progress.get("steps", [])]
        t.error = progress.get("error")
        t.left_behind = list(progress.get("left_behind", []))
        t.times.update({k: float(v) for k, v in progress.get("times", {}).items()})
    assert t.state not in FINAL
    return t


def apply_report(t: Transaction, report: dict[str, Any]) -> None:
    """Bring the leader's copy of ``t`` to what its worker did (through legal transitions only)."""
    t.steps = [StepOutcome.from_dict(s) for s in report["steps"]]
    t.error = report.get("error")
    t.left_behind = list(report.get("left_behind", []))
    state = State(report["state"])
    times = report.get("times", {})
    if state is not State.STARTED:
        if t.state is State.STARTED and State.KILLED.value in times:
            move(t, State.KILLED)
        if t.state in (State.STARTED, State.KILLED):
            move(t, State.ROLLING_BACK)
    for key in (State.KILLED.value, State.ROLLING_BACK.value):
        if key in times and key in t.times:
            t.times[key] = float(times[key])  # the worker's clock saw it happen
