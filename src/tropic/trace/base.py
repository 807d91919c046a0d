"""Value records shared by every VM arrival trace: flavors, lifetime bins, VM arrivals and replay events.

Trace readers (such as :mod:`tropic.trace.azure`) turn files into these records; replay code consumes them
without knowing which format they came from.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Flavor:
    """A VM size: ``letter`` is the trace's short name for it."""

    letter: str
    vcpus: int
    memory_mib: int


@dataclass(frozen=True, slots=True)
class LifetimeBin:
    """Lifetime bin ``index`` covers the durations ``lower_s <= d < upper_s`` (seconds)."""

    index: int
    lower_s: int
    upper_s: int

    @property
    def midpoint_s(self) -> float:
        return (self.lower_s + self.upper_s) / 2


@dataclass(frozen=True, slots=True)
class LifetimeBins:
    """The contiguous bins ``0..n-1`` of a trace, in order; bin ``k`` is ``bins[k]``."""

    bins: tuple[LifetimeBin, ...]
    _lowers: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lowers", tuple(b.lower_s for b in self.bins))

    def __len__(self) -> int:
        return len(self.bins)

    def __getitem__(self, index: int) -> LifetimeBin:
        return self.bins[index]

    def bin_of(self, duration_s: float) -> int | None:
        """The bin holding ``duration_s``, or ``None`` when it lies outside every bin."""
        i = bisect.bisect_right(self._lowers, duration_s) - 1
        if i < 0 or duration_s >= self.bins[i].upper_s:
            return None
        return i


@dataclass(frozen=True, slots=True)
class VmArrival:
    """One VM of a trace.

    ``batch`` numbers the tenant batches of the whole trace (VMs requested together share it).
    ``lifetime_s`` is an estimate from the lifetime bin when ``censored`` is false; when ``censored`` is true
    the VM was still running at the end of the trace, ``end_s`` is that end and ``lifetime_s`` is how long
    it had run by then (a lower bound of its real lifetime).
    """

    id: int
    time_s: int
    flavor: str
    vcpus: int
    memory_mib: int
    batch: int
    lifetime_bin: int
    lifetime_s: float
    censored: bool
    end_s: float


class EventKind(enum.Enum):
    # Declared departure first: at equal times a replay frees capacity before it places new VMs.
    DEPARTURE = "departure"
    ARRIVAL = "arrival"


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """An arrival (at ``vm.time_s``) or a departure (at ``vm.end_s``) of one VM during a replay."""

    time_s: float
    kind: EventKind
    vm: VmArrival
