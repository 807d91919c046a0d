"""tropic: safe, self-managing cloud orchestration.

Every procedure runs as an ACID transaction: simulated on a logical model with safety constraints checked
before any device is touched, isolated by hierarchical locks, executed with per-step undo.
"""

from tropic.drivers import Driver, Fault, SimDriver
from tropic.errors import TropicError
from tropic.model import STANDARD, Model, Resource, action, constraint, project, query, undo, undo_at
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.txn import Controller, State, Transaction, procedure

__version__ = "0.1.0"

__all__ = [
    "STANDARD",
    "Controller",
    "DatacenterSpec",
    "Driver",
    "Fault",
    "Model",
    "Resource",
    "SimDriver",
    "State",
    "Transaction",
    "TropicError",
    "__version__",
    "action",
    "build_datacenter",
    "constraint",
    "procedure",
    "project",
    "query",
    "undo",
    "undo_at",
]
