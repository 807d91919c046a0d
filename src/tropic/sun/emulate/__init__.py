"""`tropic sun --emulate`: a strategy's day replayed on a real ZooKeeper ensemble whose members sit in
emulated regions (a delay proxy on loopback fed from the latency matrix), with real client processes
measuring the latency they perceive, next to the model's figure.

* ``proxy``: the delay proxy (one port per route, delays changed at run time);
* ``topology``: how a placement maps onto the elected leader and the other members;
* ``wide_area``: the ensemble behind the proxy, and a member's migration (address kept, region moved,
  process paused for the downtime);
* ``clients``: the client processes;
* ``run``: the run, step by step, and its report.
"""

from tropic.sun.emulate.proxy import DelayProxy, Route, measure_rtt_ms
from tropic.sun.emulate.run import EmulateOptions, EmulationReport, StepFigures, StrategyRun, run
from tropic.sun.emulate.topology import assign_members
from tropic.sun.emulate.wide_area import WideArea

__all__ = [
    "DelayProxy",
    "EmulateOptions",
    "EmulationReport",
    "Route",
    "StepFigures",
    "StrategyRun",
    "WideArea",
    "assign_members",
    "measure_rtt_ms",
    "run",
]
