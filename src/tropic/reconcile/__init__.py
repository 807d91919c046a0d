"""Cross-layer consistency: drift detection, reload (device -> model) and repair (model -> device).

:class:`Reconciler` compares the logical model with what the drivers report, per device, on demand and
periodically; drifted resources are fenced until reloaded or repaired, and a policy per resource kind
resolves drift on its own.
The repair procedures themselves live in :mod:`tropic.procedures.repair`.
"""

from tropic.reconcile.base import (
    DeviceUnreachable,
    Drift,
    NotRepairable,
    Policies,
    Policy,
    ReconcileError,
    Reconciliation,
    ReloadResult,
    RepairResult,
    ScopeBusy,
)
from tropic.reconcile.plan import REPAIRS, plan
from tropic.reconcile.reconciler import Reconciler

__all__ = [
    "REPAIRS",
    "DeviceUnreachable",
    "Drift",
    "NotRepairable",
    "Policies",
    "Policy",
    "ReconcileError",
    "Reconciler",
    "Reconciliation",
    "ReloadResult",
    "RepairResult",
    "ScopeBusy",
    "plan",
]
