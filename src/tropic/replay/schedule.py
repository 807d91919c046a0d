"""When each trace event happens during a replay, in trace seconds from the trace start.

The trace gives arrivals per 300 s bin and lifetimes per lifetime bin only; where in its bin a VM arrives
and where in its lifetime bin it ends are modelling choices. :class:`Arrivals`: spaced evenly across the
time bin one by one (``uniform``, the default: nothing in the trace says a tenant's VMs of one bin came
together), each tenant batch at one instant with the batches spaced evenly (``batch``), or the whole bin
at its first instant (``bin-start``). :class:`Lifetimes`: spread over the lifetime bin by a low-discrepancy
sequence (``uniform``, the default) or the bin's midpoint, as the trace reader estimates it (``midpoint``:
the VMs of a batch then all leave at the same instant). A departure never falls past the trace end.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tropic.errors import InvalidArguments
from tropic.trace import EventKind, LifetimeBins, VmArrival


class Arrivals(enum.Enum):
    UNIFORM = "uniform"
    BATCH = "batch"
    BIN_START = "bin-start"


class Lifetimes(enum.Enum):
    UNIFORM = "uniform"
    MIDPOINT = "midpoint"


_GOLDEN = (5**0.5 - 1) / 2  # Weyl sequence step: id x golden ratio mod 1 spreads evenly over [0, 1)


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """An arrival or departure of ``vm`` at ``at_s`` trace seconds after the trace start."""

    at_s: float
    kind: EventKind
    vm: VmArrival


def timed_events(
    vms: Sequence[VmArrival],
    *,
    start_s: float,
    end_s: float,
    bin_s: float,
    arrivals: Arrivals = Arrivals.UNIFORM,
    lifetimes: Lifetimes = Lifetimes.MIDPOINT,
    lifetime_bins: LifetimeBins | None = None,
    censored_departures: bool = False,
    horizon_s: float | None = None,
) -> Iterator[TimedEvent]:
    """Every arrival and departure of ``vms`` (in arrival order) in time order; departures come first at
    equal times, so capacity is freed before it is asked for. Censored VMs (still running at the trace
    end) depart only with ``censored_departures``. Nothing after ``horizon_s`` (absolute trace seconds;
    e.g. the end of the bins loaded from a longer trace) is replayed: VMs still running then stay.
    ``Lifetimes.UNIFORM`` needs the trace's ``lifetime_bins``."""
    if lifetimes is Lifetimes.UNIFORM and lifetime_bins is None:
        raise InvalidArguments("uniform lifetimes need the trace's lifetime bins")
    running: list[tuple[float, int, VmArrival]] = []
    limit = (end_s if horizon_s is None else min(horizon_s, end_s)) - start_s
    for _, group in itertools.groupby(vms, key=lambda v: v.time_s):
        members = list(group)
        offsets = _offsets(members, bin_s, arrivals)
        for vm, offset in zip(members, offsets, strict=True):
            at = vm.time_s + offset - start_s
            while running and running[0][0] <= at:
                leave, _, gone = heapq.heappop(running)
                yield TimedEvent(leave, EventKind.DEPARTURE, gone)
            yield TimedEvent(at, EventKind.ARRIVAL, vm)
            if censored_departures or not vm.censored:
                if vm.censored or lifetime_bins is None or lifetimes is Lifetimes.MIDPOINT:
                    ends = vm.end_s + offset
                else:
                    b = lifetime_bins[vm.lifetime_bin]
                    upper = min(b.upper_s, end_s - vm.time_s)  # it ended before the trace end
                    ends = vm.time_s + offset + b.lower_s + (upper - b.lower_s) * (vm.id * _GOLDEN % 1.0)
                leave = min(ends, end_s) - start_s
                heapq.heappush(running, (max(leave, at), vm.id, vm))
    while running and running[0][0] <= limit:
        leave, _, gone = heapq.heappop(running)
        yield TimedEvent(leave, EventKind.DEPARTURE, gone)


def _offsets(members: list[VmArrival], bin_s: float, arrivals: Arrivals) -> list[float]:
    if arrivals is Arrivals.UNIFORM:
        return [i * bin_s / len(members) for i in range(len(members))]
    if arrivals is Arrivals.BATCH:
        batches = list(dict.fromkeys(vm.batch for vm in members))
        slot = {b: i * bin_s / len(batches) for i, b in enumerate(batches)}
        return [slot[vm.batch] for vm in members]
    return [0.0] * len(members)
