"""Trace replay and datacenter-scale evaluation: time-compressed replay of a VM arrival trace against a
controller (placement, metrics, reports, speedup sweeps) and the model-scale benchmark."""

from tropic.replay.datacenter import Demand, HostProfile, build_replay_datacenter, hosts_for, peak_demand
from tropic.replay.engine import ReplayProgress, ReplayResult, ReplaySpec, run_replay
from tropic.replay.inputs import TraceFiles
from tropic.replay.placement import CapacityIndex, HostCapacity, Policy
from tropic.replay.schedule import Arrivals, Lifetimes, TimedEvent, timed_events

__all__ = [
    "Arrivals",
    "CapacityIndex",
    "Demand",
    "HostCapacity",
    "HostProfile",
    "Lifetimes",
    "Policy",
    "ReplayProgress",
    "ReplayResult",
    "ReplaySpec",
    "TimedEvent",
    "TraceFiles",
    "build_replay_datacenter",
    "hosts_for",
    "peak_demand",
    "run_replay",
    "timed_events",
]
