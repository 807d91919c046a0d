"""The reconciliation contract: drift records, per-kind policies, what reload and repair report, and the
interface the API and CLI use (:class:`Reconciliation`).

*Drift* is a difference between the logical model and what a device reports, found outside any running
transaction: one record per resource attribute (``/compute/r1/host-01/vm-a`` ``state``: model running,
device stopped). A drifted resource is fenced until it is *reloaded* (device -> model) or *repaired*
(model -> device, by a compensating procedure run as a normal transaction).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tropic.errors import ConfigError, DeviceUnreachable, NotRepairable, ReconcileError, ScopeBusy
from tropic.model import Value

__all__ = ["DeviceUnreachable", "NotRepairable", "ReconcileError", "ScopeBusy"]


# --- errors ------------------------------------------------------------------------------------------------
class Policy(StrEnum):
    """What the periodic reconciler does on its own with a drift it found."""

    REPORT = "report"  # record and fence it; an operator decides (reload or repair)
    RELOAD = "reload"  # accept what the device says (e.g. mark a crashed VM stopped)
    REPAIR = "repair"  # restore the model's state on the device (e.g. restart a crashed VM)


@dataclass(frozen=True, slots=True)
class Policies:
    """A policy per resource kind (``vm``), optionally per attribute (``vm.state``), else ``default``."""

    default: Policy = Policy.REPORT
    rules: Mapping[str, Policy] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, kind: str, attribute: str) -> Policy:
        rules = self.rules
        return rules.get(f"{kind}.{attribute}") or rules.get(kind) or self.default

    @staticmethod
    def parse(text: str) -> Policies:
        """``"vm=repair,volume.exported=reload,*=report"`` (``*`` sets the default)."""
        default = Policy.REPORT
        rules: dict[str, Policy] = {}
        for item in (x.strip() for x in text.split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            try:
                policy = Policy(value.strip())
            except ValueError:
                policy = None
            if not sep or not key.strip() or policy is None:
                known = ", ".join(p.value for p in Policy)
                raise ConfigError(
                    f"policy {item!r}: expected KIND[.ATTRIBUTE]=POLICY with POLICY one of {known}"
                )
            if key.strip() == "*":
                default = policy
            else:
                rules[key.strip()] = policy
        return Policies(default, MappingProxyType(rules))

    def to_dict(self) -> dict[str, str]:
        return {"*": self.default.value, **{k: v.value for k, v in self.rules.items()}}

    def __str__(self) -> str:
        """The form :meth:`parse` reads: ``vm=repair,*=report``."""
        return ",".join(f"{k}={v.value}" for k, v in self.rules.items()) + (
            f"{',' if self.rules else ''}*={self.default.value}"
        )


# --- records -----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Drift:
    """One resource attribute that differs between the model and its device.

    ``exists`` records say whether the resource is there at all (``logical``/``physical`` are booleans;
    ``detail`` holds what the device reports for a resource the model lacks). ``reachable`` records name a
    device that did not answer. ``fenced_by`` is the fence owner of the path (0: drift, else the FAILED
    transaction that left it behind), None when not fenced.
    """

    path: str
    attribute: str
    logical: Value
    physical: Value
    kind: str
    device: str
    first_seen: float
    last_seen: float
    fence: tuple[str, ...] = ()  # the paths this drift fences
    detail: dict[str, Value] | None = None
    fenced_by: int | None = None
    seen_in_pass: int = 0  # the reconciler pass that first saw it (0: an on-demand scan)
    auto_attempts: int = 0  # automatic resolutions tried by policy
    note: str = ""  # why reload or repair left it alone

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.attribute)

    def describe(self) -> str:
        return f"{self.path} {self.attribute}: model {_show(self.logical)}, device {_show(self.physical)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "attribute": self.attribute,
            "logical": self.logical,
            "physical": self.physical,
            "kind": self.kind,
            "device": self.device,
            "detail": self.detail,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "fenced_by": self.fenced_by,
            "seen_in_pass": self.seen_in_pass,
            "note": self.note,
        }


def _show(value: Value) -> str:
    if value is True:
        return "present"
    if value is False:
        return "absent"
    return repr(value)


@dataclass(slots=True)
class ReloadResult:
    """A reload: the drift it wrote into the model, the fences it lifted, what it could not reload."""

    path: str
    changed: list[Drift] = field(default_factory=list)
    unfenced: list[str] = field(default_factory=list)
    skipped: list[Drift] = field(default_factory=list)  # unreachable or missing devices: still fenced

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "changed": [d.to_dict() for d in self.changed],
            "unfenced": list(self.unfenced),
            "skipped": [d.to_dict() for d in self.skipped],
        }


@dataclass(slots=True)
class RepairResult:
    """A repair: the compensating transactions it ran, and the drift left (empty when consistent)."""

    path: str
    transactions: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[Drift] = field(default_factory=list)
    remaining: list[Drift] = field(default_factory=list)
    unfenced: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "consistent": self.consistent,
            "transactions": list(self.transactions),
            "resolved": [d.to_dict() for d in self.resolved],
            "remaining": [d.to_dict() for d in self.remaining],
            "unfenced": list(self.unfenced),
        }


class Reconciliation(ABC):
    """What clients (the API, the CLI, the demo) can ask of a reconciler."""

    @abstractmethod
    def drift(self, path: str = "/", *, scan: bool = True) -> list[Drift]:
        """The drift at or below ``path``: read the devices now (``scan``), or what is recorded."""

    @abstractmethod
    def reload(self, path: str) -> ReloadResult:
        """Make the model match the devices at or below ``path`` and lift the fences there."""

    @abstractmethod
    def repair(self, path: str, *, timeout: float = 120.0, submitter: str = "reconciler") -> RepairResult:
        """Make the devices at or below ``path`` match the model with compensating transactions; lift the
        fences there once a fresh read shows them consistent."""

    @abstractmethod
    def fenced(self) -> dict[str, int]:
        """Every fenced path and its owner (0: drift; else the FAILED transaction)."""
