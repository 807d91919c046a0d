"""Properties of the replay event stream: time order, one arrival and at most one departure per VM."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.errors import InvalidArguments
from tropic.trace import EventKind, TraceEvent, VmArrival, iter_events


@st.composite
def vm_streams(draw: st.DrawFn, min_lifetime: int = 0) -> list[VmArrival]:
    """VMs in arrival order; small integer times and lifetimes so that ties are frequent."""
    n = draw(st.integers(0, 40))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    vms: list[VmArrival] = []
    time_s = 0
    for vm_id, gap in enumerate(gaps):
        time_s += gap
        lifetime = draw(st.integers(min_lifetime, 8))
        censored = draw(st.booleans())
        vms.append(
            VmArrival(vm_id, time_s, "a", 1, 768, vm_id, 0, float(lifetime), censored, time_s + lifetime)
        )
    return vms


def check_stream(vms: list[VmArrival], events: list[TraceEvent], censored_departures: bool) -> None:
    times = [e.time_s for e in events]
    assert times == sorted(times)
    arrivals = [e.vm.id for e in events if e.kind is EventKind.ARRIVAL]
    assert arrivals == [vm.id for vm in vms]  # every VM arrives once, in input order
    departures = Counter(e.vm.id for e in events if e.kind is EventKind.DEPARTURE)
    assert departures == Counter(vm.id for vm in vms if censored_departures or not vm.censored)
    position = {(e.kind, e.vm.id): i for i, e in enumerate(events)}
    for e in events:
        expected = e.vm.time_s if e.kind is EventKind.ARRIVAL else e.vm.end_s
        assert e.time_s == expected
        if e.kind is EventKind.DEPARTURE:
            assert position[(EventKind.ARRIVAL, e.vm.id)] < position[(EventKind.DEPARTURE, e.vm.id)]
    # At one instant, VMs that arrived earlier leave (in id order) before any VM arrives.
    for a, b in itertools.pairwise(events):
        if a.time_s == b.time_s and a.kind is EventKind.ARRIVAL and b.kind is EventKind.DEPARTURE:
            assert b.vm.time_s == b.time_s  # only a VM that lives for 0 s leaves after an arrival
        if a.time_s == b.time_s and a.kind is b.kind is EventKind.DEPARTURE and a.vm.time_s < a.time_s:
            assert b.vm.time_s == b.time_s or a.vm.id < b.vm.id


@given(vm_streams(), st.booleans())
def test_event_stream_properties(vms: list[VmArrival], censored_departures: bool) -> None:
    events = list(iter_events(vms, censored_departures=censored_departures))
    check_stream(vms, events, censored_departures)


@given(vm_streams(min_lifetime=1))
def test_events_equal_a_full_sort(vms: list[VmArrival]) -> None:
    """With positive lifetimes the stream is exactly: by time, departures first, then by VM id."""
    events = list(iter_events(vms, censored_departures=True))
    reference = sorted(
        [TraceEvent(vm.time_s, EventKind.ARRIVAL, vm) for vm in vms]
        + [TraceEvent(vm.end_s, EventKind.DEPARTURE, vm) for vm in vms],
        key=lambda e: (e.time_s, e.kind is EventKind.ARRIVAL, e.vm.id),
    )
    assert events == reference


def test_events_are_lazy() -> None:
    def endless() -> Iterator[VmArrival]:
        vm_id = 0
        while True:
            yield VmArrival(vm_id, vm_id, "a", 1, 768, vm_id, 0, 1.0, False, vm_id + 1.0)
            vm_id += 1

    stream = iter_events(endless())
    first = [next(stream) for _ in range(5)]
    assert [(e.kind, e.vm.id) for e in first] == [
        (EventKind.ARRIVAL, 0),
        (EventKind.DEPARTURE, 0),
        (EventKind.ARRIVAL, 1),
        (EventKind.DEPARTURE, 1),
        (EventKind.ARRIVAL, 2),
    ]


def test_unordered_input_is_refused() -> None:
    vms = [
        VmArrival(0, 10, "a", 1, 768, 0, 0, 1.0, False, 11.0),
        VmArrival(1, 5, "a", 1, 768, 1, 0, 1.0, False, 6.0),
    ]
    with pytest.raises(InvalidArguments, match="not in time order: VM 1 arrives at 5 s"):
        list(iter_events(vms))
    with pytest.raises(InvalidArguments, match=re.escape("VM 0 ends at 9.0 s, before it arrives at 10 s")):
        list(iter_events([VmArrival(0, 10, "a", 1, 768, 0, 0, -1.0, False, 9.0)]))
