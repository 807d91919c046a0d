"""High availability: replicated controllers on ZooKeeper (leader election, takeover, the served API).

Several controller processes run :class:`Replica`; one is elected leader through ZooKeeper and runs the
logical layer on the distributed store, the others stand by and take over (restoring the state from the
store) when its session ends. Worker processes (:mod:`tropic.txn.remote`) run the physical steps.
"""

from tropic.cluster.controller import ReplicatedController
from tropic.cluster.election import Election, LeaderInfo
from tropic.cluster.gate import DurableKeys, LeaderGate
from tropic.cluster.replica import Replica, ReplicaConfig

__all__ = [
    "DurableKeys",
    "Election",
    "LeaderGate",
    "LeaderInfo",
    "Replica",
    "ReplicaConfig",
    "ReplicatedController",
]
