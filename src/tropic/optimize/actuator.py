"""The actuator: run a plan's steps one by one as ordinary transactions.

The optimizer never touches the model or a device itself. Each :class:`~tropic.optimize.plan.PlannedStep`
is handed to a :class:`StepRunner`, which submits it as a transaction and waits for its outcome, so every
step is simulated, constraint-checked, locked and logged by the transaction layer like any other request.
The run stops at the first step that does not commit: later steps were ordered assuming it happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tropic.optimize.plan import PlannedStep


@dataclass(frozen=True)
class StepOutcome:
    """How one submitted step ended: ``state`` is the transaction's final state (e.g. ``COMMITTED``)."""

    step: PlannedStep
    committed: bool
    state: str
    txn_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {**self.step.to_dict(), "committed": self.committed, "state": self.state}
        if self.txn_id is not None:
            out["txn_id"] = self.txn_id
        if self.error is not None:
            out["error"] = self.error
        return out


class StepRunner(Protocol):
    """Submits one procedure call as a transaction and returns once it reached a final state."""

    def run(self, step: PlannedStep) -> StepOutcome: ...


@dataclass
class ExecutionReport:
    """The outcome of every step that was submitted, and the steps never submitted."""

    outcomes: list[StepOutcome] = field(default_factory=list)
    skipped: list[PlannedStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and all(o.committed for o in self.outcomes)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "outcomes": [o.to_dict() for o in self.outcomes],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def execute_plan(
    plan: Sequence[PlannedStep],
    runner: StepRunner,
    *,
    on_step: Callable[[int, StepOutcome], None] | None = None,
) -> ExecutionReport:
    """Submit ``plan`` step by step through ``runner``; stop at the first step that does not commit."""
    report = ExecutionReport()
    for i, step in enumerate(plan):
        outcome = runner.run(step)
        report.outcomes.append(outcome)
        if on_step is not None:
            on_step(i, outcome)
        if not outcome.committed:
            report.skipped.extend(plan[i + 1 :])
            break
    return report
