"""Trace events on the replay's clock: where VMs arrive and leave within their bins."""

from __future__ import annotations

import pytest

from tropic.errors import InvalidArguments
from tropic.replay.schedule import Arrivals, Lifetimes, timed_events
from tropic.trace import EventKind, load_azure_trace, sample_path


@pytest.mark.parametrize("arrivals", list(Arrivals))
@pytest.mark.parametrize("lifetimes", list(Lifetimes))
def test_events_are_in_time_order_and_each_vm_arrives_before_it_leaves(
    arrivals: Arrivals, lifetimes: Lifetimes
) -> None:
    trace = load_azure_trace(sample_path())
    events = list(
        timed_events(
            trace.vms,
            start_s=trace.start_s,
            end_s=trace.end_s,
            bin_s=trace.bin_s,
            arrivals=arrivals,
            lifetimes=lifetimes,
            lifetime_bins=trace.lifetime_bins,
        )
    )
    times = [e.at_s for e in events]
    assert times == sorted(times)
    arrived: dict[int, float] = {}
    for e in events:
        if e.kind is EventKind.ARRIVAL:
            # Within its own 300 s bin.
            assert e.vm.time_s - trace.start_s <= e.at_s < e.vm.time_s - trace.start_s + trace.bin_s
            arrived[e.vm.id] = e.at_s
        else:
            assert e.vm.id in arrived and e.at_s >= arrived.pop(e.vm.id)
            assert e.at_s <= trace.end_s - trace.start_s
            assert not e.vm.censored
    assert len(arrived) == len(trace) - sum(1 for e in events if e.kind is EventKind.DEPARTURE)


def test_uniform_lifetimes_stay_in_their_bin() -> None:
    trace = load_azure_trace(sample_path())
    events = timed_events(
        trace.vms,
        start_s=trace.start_s,
        end_s=trace.end_s,
        bin_s=trace.bin_s,
        arrivals=Arrivals.BIN_START,
        lifetimes=Lifetimes.UNIFORM,
        lifetime_bins=trace.lifetime_bins,
    )
    for e in events:
        if e.kind is EventKind.DEPARTURE:
            b = trace.lifetime_bins[e.vm.lifetime_bin]
            lived = e.at_s - (e.vm.time_s - trace.start_s)
            assert b.lower_s <= lived <= b.upper_s


def test_batch_arrivals_keep_a_tenant_batch_together() -> None:
    trace = load_azure_trace(sample_path())
    events = timed_events(
        trace.vms, start_s=trace.start_s, end_s=trace.end_s, bin_s=trace.bin_s, arrivals=Arrivals.BATCH
    )
    when: dict[int, set[float]] = {}
    for e in events:
        if e.kind is EventKind.ARRIVAL:
            when.setdefault(e.vm.batch, set()).add(e.at_s)
    assert all(len(times) == 1 for times in when.values())


def test_nothing_after_the_horizon_is_replayed() -> None:
    trace = load_azure_trace(sample_path(), max_bins=4)
    horizon = trace.start_s + 4 * trace.bin_s
    events = list(
        timed_events(
            trace.vms,
            start_s=trace.start_s,
            end_s=trace.end_s,
            bin_s=trace.bin_s,
            lifetimes=Lifetimes.MIDPOINT,
            horizon_s=horizon,
        )
    )
    assert max(e.at_s for e in events) <= horizon - trace.start_s


def test_uniform_lifetimes_need_the_bins() -> None:
    trace = load_azure_trace(sample_path(), max_bins=1)
    with pytest.raises(InvalidArguments):
        list(timed_events(trace.vms, start_s=0, end_s=trace.end_s, bin_s=300, lifetimes=Lifetimes.UNIFORM))
