"""Turn a time-ordered stream of VM arrivals into the arrival and departure events of a replay.

The stream is consumed lazily: only VMs still running are held in memory, so a replay of a long trace
never needs the whole trace at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from tropic.errors import InvalidArguments
from tropic.trace.base import EventKind, TraceEvent, VmArrival


def iter_events(vms: Iterable[VmArrival], *, censored_departures: bool = False) -> Iterator[TraceEvent]:
    """Yield every arrival and departure of ``vms`` in time order.

    ``vms`` must be ordered by ``time_s`` (as trace readers produce them). At equal times departures come
    before arrivals, so a replay frees capacity before it places new VMs; departures at one instant come
    in VM id order, arrivals in input order. A VM's departure always follows its own arrival.

    A censored VM was still running when the trace ended; it gets a departure event (at ``end_s``, the
    trace end) only when ``censored_departures`` is true.
    """
    # (end_s, vm id, sequence, vm): the sequence breaks ties between equal ids so a VmArrival is never
    # compared.
    running: list[tuple[float, int, int, VmArrival]] = []
    last_time: float | None = None
    for seq, vm in enumerate(vms):
        if last_time is not None and vm.time_s < last_time:
            raise InvalidArguments(
                f"VM arrivals are not in time order: VM {vm.id} arrives at {vm.time_s} s, "
                f"after a VM that arrived at {last_time} s"
            )
        if vm.end_s < vm.time_s:
            raise InvalidArguments(f"VM {vm.id} ends at {vm.end_s} s, before it arrives at {vm.time_s} s")
        last_time = vm.time_s
        while running and running[0][0] <= vm.time_s:
            gone = heapq.heappop(running)[3]
            yield TraceEvent(gone.end_s, EventKind.DEPARTURE, gone)
        yield TraceEvent(vm.time_s, EventKind.ARRIVAL, vm)
        if censored_departures or not vm.censored:
            heapq.heappush(running, (vm.end_s, vm.id, seq, vm))
    while running:
        gone = heapq.heappop(running)[3]
        yield TraceEvent(gone.end_s, EventKind.DEPARTURE, gone)
