"""``tropic autopilot bench``: consolidation policies side by side on a PlanetLab day, CloudSim's datacenter
(HP ML110 G4/G5, SPECpower), the paper's metrics, and the controller's transactions in the loop."""

from tropic.autopilot.bench.fleet import Fleet, cloudsim_fleet
from tropic.autopilot.bench.lr_mmt import LrMmt
from tropic.autopilot.bench.watcher import NoConsolidation, WatcherConsolidation
from tropic.autopilot.bench.workload import Trace, TraceError, read_trace, sample_path

__all__ = [
    "Fleet",
    "LrMmt",
    "NoConsolidation",
    "Trace",
    "TraceError",
    "WatcherConsolidation",
    "cloudsim_fleet",
    "read_trace",
    "sample_path",
]
