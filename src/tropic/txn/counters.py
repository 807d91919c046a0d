"""Counters of transaction outcomes, kept by the logical thread and read by metrics and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from tropic.records.record import Transaction
from tropic.records.states import State


@dataclass(slots=True)
class Counters:
    submitted: int = 0
    committed: int = 0
    aborted: int = 0
    rolled_back: int = 0
    failed: int = 0
    killed: int = 0
    deferred: int = 0  # deferral events (a transaction deferred twice counts twice)

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def final(self, t: Transaction) -> None:
        """Count ``t``, which has just become final."""
        if t.state is State.COMMITTED:
            self.committed += 1
        elif t.state is State.FAILED:
            self.failed += 1
        else:
            self.aborted += 1
        if State.KILLED.value in t.times:
            self.killed += 1

    def restored(self, t: Transaction) -> None:
        """Count ``t`` as restored from a store: the counters of a reopened controller cover its history."""
        self.submitted += 1
        self.deferred += t.deferrals
        if t.state is State.COMMITTED:
            self.committed += 1
        elif t.state is State.FAILED:
            self.failed += 1
        elif t.state is State.ABORTED:
            self.aborted += 1
            if State.ROLLING_BACK.value in t.times:
                self.rolled_back += 1
        if t.final and State.KILLED.value in t.times:
            self.killed += 1
