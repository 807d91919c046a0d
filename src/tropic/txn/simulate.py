"""Simulation: run a procedure on a copy-on-write view, then check the constraints of what it touched.

This is where everything that can be decided without touching a device is decided (plan, then apply):
the action log, the read/write sets and therefore the locks, and every constraint violation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tropic.errors import ModelError, TropicError
from tropic.model import ActionRecord, Model, Value, View, Violation
from tropic.procedures import Procedure
from tropic.txn.locks import LockSet


@dataclass(slots=True)
class Simulation:
    procedure: str
    args: dict[str, Value]
    view: View
    error: TropicError | None = None
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.violations

    @property
    def actions(self) -> list[ActionRecord]:
        return self.view.log

    def locks(self) -> LockSet:
        return LockSet.from_sets(self.view.reads, self.view.writes)

    def to_dict(self) -> dict[str, Value]:
        locks = self.locks()
        return {
            "procedure": self.procedure,
            "args": self.args,
            "ok": self.ok,
            "actions": [a.to_dict() for a in self.actions],
            "violations": [v.to_dict() for v in self.violations],
            "error": self.error.to_dict() if self.error else None,
            "locks": {"read": sorted(locks.reads), "write": sorted(locks.writes)},
        }


def simulate(model: Model, proc: Procedure, args: Mapping[str, Value]) -> Simulation:
    """Run ``proc`` on a fresh view of ``model``; the model itself is not changed."""
    view = model.view()
    sim = Simulation(proc.name, dict(args), view)
    try:
        proc.run(view, args)
    except TropicError as e:
        sim.error = e
        return sim
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        # A bug or a bad value inside procedure code: report it as data, never crash the controller.
        sim.error = ModelError(f"procedure {proc.name} failed: {type(e).__name__}: {e}")
        return sim
    try:
        sim.violations = view.check_constraints()
    except TropicError as e:
        sim.error = e
    return sim
