"""Procedures: what a transaction runs. Each is a plain function over a model view with typed keyword
arguments; a :class:`Registry` names the ones a controller may run.

:data:`REGISTRY`, the default, holds the standard procedures (:mod:`tropic.procedures.standard`), the
host lifecycle (:mod:`tropic.procedures.hosts`: cordon, uncordon), the fleet procedures
(:mod:`tropic.procedures.inventory`) and the repairs (:mod:`tropic.procedures.repair`), listed explicitly.
:func:`procedure` adds one of your own.
"""

from tropic.procedures.base import Param, Procedure, ProcedureFn, Registry
from tropic.procedures.geo import GEO_PROCEDURES
from tropic.procedures.hosts import HOST_PROCEDURES
from tropic.procedures.images import IMAGE_PROCEDURES
from tropic.procedures.inventory import INVENTORY_PROCEDURES
from tropic.procedures.jobs import JOB_PROCEDURES
from tropic.procedures.rebuild import REBUILD_PROCEDURES, REBUILD_REPAIRS
from tropic.procedures.repair import REPAIR_PROCEDURES
from tropic.procedures.services import SERVICE_PROCEDURES
from tropic.procedures.standard import STANDARD_PROCEDURES

REGISTRY = Registry.of(STANDARD_PROCEDURES, HOST_PROCEDURES, INVENTORY_PROCEDURES, repairs=REPAIR_PROCEDURES)
for _fn in SERVICE_PROCEDURES:  # managed services: create, delete, spawn and destroy members
    REGISTRY.register(_fn)
for _fn in JOB_PROCEDURES:  # replicated jobs: create, delete, replace a replica
    REGISTRY.register(_fn)
for _fn in (*GEO_PROCEDURES, *IMAGE_PROCEDURES):  # replicated services across regions; the image store
    REGISTRY.register(_fn)
for _fn in REBUILD_PROCEDURES:  # a dead host: declare it failed, rebuild its VMs elsewhere
    REGISTRY.register(_fn)
for _fn in REBUILD_REPAIRS:  # ... and declare it recovered (before its stale domains are repaired)
    REGISTRY.register(_fn, repairs_fences=True)


def procedure(fn: ProcedureFn) -> ProcedureFn:
    """Add a procedure to the default registry: ``def name(view, *, arg: type, ...)``."""
    REGISTRY.register(fn)
    return fn


__all__ = [
    "GEO_PROCEDURES",
    "HOST_PROCEDURES",
    "IMAGE_PROCEDURES",
    "INVENTORY_PROCEDURES",
    "JOB_PROCEDURES",
    "REBUILD_PROCEDURES",
    "REGISTRY",
    "REPAIR_PROCEDURES",
    "SERVICE_PROCEDURES",
    "STANDARD_PROCEDURES",
    "Param",
    "Procedure",
    "ProcedureFn",
    "Registry",
    "procedure",
]
