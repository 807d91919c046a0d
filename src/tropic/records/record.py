"""The transaction record: everything a user or a recovery needs to know about one transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tropic.model import ActionRecord, Delta, Value, Violation
from tropic.records.states import FINAL, State


@dataclass(slots=True)
class StepOutcome:
    """What happened to one physical step (forward or undo) on its device."""

    index: int
    path: str
    action: str
    undo: bool
    status: str  # "done" | "failed" | "skipped"
    started: float
    finished: float
    error: dict[str, Value] | None = None

    def to_dict(self) -> dict[str, Value]:
        return {
            "index": self.index,
            "path": self.path,
            "action": self.action,
            "undo": self.undo,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> StepOutcome:
        return StepOutcome(
            d["index"],
            d["path"],
            d["action"],
            d["undo"],
            d["status"],
            d["started"],
            d["finished"],
            d["error"],
        )


@dataclass(slots=True, eq=False)
class Transaction:
    id: int
    procedure: str
    args: dict[str, Value]
    submitter: str = "local"
    state: State = State.SUBMITTED
    times: dict[str, float] = field(default_factory=dict)
    actions: list[ActionRecord] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    error: dict[str, Value] | None = None
    violations: list[Violation] = field(default_factory=list)
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    left_behind: list[str] = field(default_factory=list)
    deferrals: int = 0
    blocked_by: int | None = None
    kill_requested: bool = False
    delta: Delta | None = None
    accepted: bool = False  # the submission is durable
    settled: bool = False  # final, and the final state is durable (only then is it reported)
    saved_steps: int = 0  # how many step outcomes the store has (progress of in-flight transactions)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def violation(self) -> Violation | None:
        return self.violations[0] if self.violations else None

    @property
    def latency_s(self) -> float | None:
        start = self.times.get(State.SUBMITTED.value)
        for s in FINAL:
            end = self.times.get(s.value)
            if end is not None and start is not None:
                return end - start
        return None

    def to_dict(self, *, actions: bool = True) -> dict[str, Value]:
        """The record as plain data (``actions=False`` leaves out the action log, stored apart)."""
        out: dict[str, Value] = {
            "id": self.id,
            "procedure": self.procedure,
            "args": self.args,
            "submitter": self.submitter,
            "state": self.state.value,
            "times": dict(self.times),
            "steps": [s.to_dict() for s in self.steps],
            "error": self.error,
            "violations": [v.to_dict() for v in self.violations],
            "reads": sorted(self.reads),
            "writes": sorted(self.writes),
            "left_behind": list(self.left_behind),
            "deferrals": self.deferrals,
        }
        if actions:
            out["actions"] = [a.to_dict() for a in self.actions]
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Transaction:
        t = Transaction(int(d["id"]), d["procedure"], dict(d["args"]), d.get("submitter", "local"))
        t.state = State(d["state"])
        t.times = {k: float(v) for k, v in d.get("times", {}).items()}
        t.actions = [ActionRecord.from_dict(a) for a in d.get("actions", [])]
        t.steps = [StepOutcome.from_dict(s) for s in d.get("steps", [])]
        t.error = d.get("error")
        t.violations = [Violation(v["constraint"], v["message"], v["path"]) for v in d.get("violations", [])]
        t.reads = frozenset(d.get("reads", ()))
        t.writes = frozenset(d.get("writes", ()))
        t.left_behind = list(d.get("left_behind", []))
        t.deferrals = int(d.get("deferrals", 0))
        if "delta" in d:
            t.delta = Delta.from_dict(d["delta"])
        t.saved_steps = len(t.steps)
        t.accepted = True
        t.settled = t.final
        return t


def key_id(owner: str, key: str) -> str:
    """The stored name of an idempotency key (scoped to its owner; the key itself is not stored)."""
    return hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()[:40]
