"""The driver contract: one method per physical action of the standard schema, grouped by capability.

Workers replay the action log through :meth:`Driver.execute`; each method receives the resource path the
action targets and the action's plain-data arguments. Drivers must make every action idempotent (applying
an action whose effect is already present succeeds), so recovery can redo or undo a step that may or may
not have reached the device before a crash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from tropic.errors import DriverError
from tropic.model import STANDARD, Inventory, Value

Args = Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class Step:
    """One physical step: a forward action or an undo action of a transaction's log."""

    txn: int
    index: int
    path: str
    action: str
    args: Args
    undo: bool = False

    def describe(self) -> str:
        what = "undo " if self.undo else ""
        return f"{what}{self.action} on {self.path}"


class ComputeDriver(ABC):
    """Hypervisor hosts and their VMs."""

    @abstractmethod
    def create_vm(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def delete_vm(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def create_config(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def delete_config(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def migrate(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def import_volume(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def unimport_volume(self, host: str, args: Args) -> None: ...
    @abstractmethod
    def start(self, vm: str, args: Args) -> None: ...
    @abstractmethod
    def stop(self, vm: str, args: Args) -> None: ...
    @abstractmethod
    def resize(self, vm: str, args: Args) -> None: ...


class StorageDriver(ABC):
    """Storage hosts, their images and volumes."""

    @abstractmethod
    def clone_image(self, san: str, args: Args) -> None: ...
    @abstractmethod
    def delete_volume(self, san: str, args: Args) -> None: ...
    @abstractmethod
    def export_volume(self, volume: str, args: Args) -> None: ...
    @abstractmethod
    def unexport_volume(self, volume: str, args: Args) -> None: ...


class NetworkDriver(ABC):
    """Routers."""

    @abstractmethod
    def set_next_hop(self, router: str, args: Args) -> None: ...


class Driver(ComputeDriver, StorageDriver, NetworkDriver):
    """A complete backend: every capability plus an inventory of what the devices really hold."""

    name = "driver"

    def execute(self, step: Step) -> None:
        """Run one step on its device; raise a :class:`DriverError` naming the resource on failure."""
        method = getattr(self, step.action, None)
        if step.action not in ACTIONS or method is None:
            raise DriverError(f"{self.name} driver has no action {step.action!r}", path=step.path)
        method(step.path, step.args)

    @abstractmethod
    def inventory(self) -> Inventory:
        """The physical state, in the shape of :func:`tropic.model.project`."""

    def close(self) -> None:
        """Release connections and flush state."""


ACTIONS = frozenset(STANDARD.actions())

# A missing driver method fails here, at import, not in production.
_missing = sorted(a for a in ACTIONS if not hasattr(Driver, a))
if _missing:
    raise ImportError(f"driver contract lacks methods for actions {_missing}")
