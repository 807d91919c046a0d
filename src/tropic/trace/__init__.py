"""VM arrival traces: typed records, readers of trace formats, and the event stream of a replay."""

from tropic.trace.azure import (
    ARRIVALS_FILE,
    DEFAULT_BIN_S,
    FLAVORS_FILE,
    LIFETIME_BINS_FILE,
    LIFETIMES_FILE,
    AzureTrace,
    iter_azure_vms,
    load_azure_trace,
    read_flavors,
    read_lifetime_bins,
    sample_path,
)
from tropic.trace.base import EventKind, Flavor, LifetimeBin, LifetimeBins, TraceEvent, VmArrival
from tropic.trace.events import iter_events

__all__ = [
    "ARRIVALS_FILE",
    "DEFAULT_BIN_S",
    "FLAVORS_FILE",
    "LIFETIMES_FILE",
    "LIFETIME_BINS_FILE",
    "AzureTrace",
    "EventKind",
    "Flavor",
    "LifetimeBin",
    "LifetimeBins",
    "TraceEvent",
    "VmArrival",
    "iter_azure_vms",
    "iter_events",
    "load_azure_trace",
    "read_flavors",
    "read_lifetime_bins",
    "sample_path",
]
