"""The autopilot: Rhizoma's control loop inside the service (sensors -> knowledge base -> prediction ->
a policy's plan -> the actuator's transactions), run by the controller leader. Every change it decides is
an ordinary transaction. The contract between the parts is :mod:`tropic.autopilot.base`."""

from tropic.autopilot.base import (
    HostState,
    Move,
    Observation,
    Plan,
    Policy,
    PolicyError,
    ServiceState,
    Snapshot,
    SpawnRequest,
    VMState,
)

__all__ = [
    "HostState",
    "Move",
    "Observation",
    "Plan",
    "Policy",
    "PolicyError",
    "ServiceState",
    "Snapshot",
    "SpawnRequest",
    "VMState",
]
