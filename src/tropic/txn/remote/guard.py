"""The session guard of a worker process: no device action runs once its ZooKeeper session is in doubt
(it waits) or gone (it never runs; another worker resumes the transaction)."""

from __future__ import annotations

from collections.abc import Callable

from tropic.drivers.base import Args, Driver, Step
from tropic.model import Inventory


class Abandoned(BaseException):
    """The worker lost its ZooKeeper session: stop this transaction *now*, without undoing anything
    (another worker resumes it). A BaseException on purpose: step error handling catches ``Exception``
    and would otherwise start a rollback. Never leaves this package."""


class GuardedDriver(Driver):
    """The worker's driver, checked before every device action: while the session is in doubt the
    action waits; once the session is gone it never runs."""

    def __init__(self, inner: Driver, guard: Callable[[], None]) -> None:
        self.inner = inner
        self.guard = guard
        self.name = inner.name

    def execute(self, step: Step) -> None:
        self.guard()
        self.inner.execute(step)

    def inventory(self) -> Inventory:
        return self.inner.inventory()

    # Driver.execute dispatches to the methods below; this class forwards whole steps instead.
    def create_vm(self, host: str, args: Args) -> None:
        self.inner.create_vm(host, args)

    def delete_vm(self, host: str, args: Args) -> None:
        self.inner.delete_vm(host, args)

    def create_config(self, host: str, args: Args) -> None:
        self.inner.create_config(host, args)

    def delete_config(self, host: str, args: Args) -> None:
        self.inner.delete_config(host, args)

    def migrate(self, host: str, args: Args) -> None:
        self.inner.migrate(host, args)

    def import_volume(self, host: str, args: Args) -> None:
        self.inner.import_volume(host, args)

    def unimport_volume(self, host: str, args: Args) -> None:
        self.inner.unimport_volume(host, args)

    def start(self, vm: str, args: Args) -> None:
        self.inner.start(vm, args)

    def stop(self, vm: str, args: Args) -> None:
        self.inner.stop(vm, args)

    def resize(self, vm: str, args: Args) -> None:
        self.inner.resize(vm, args)

    def clone_image(self, san: str, args: Args) -> None:
        self.inner.clone_image(san, args)

    def delete_volume(self, san: str, args: Args) -> None:
        self.inner.delete_volume(san, args)

    def export_volume(self, volume: str, args: Args) -> None:
        self.inner.export_volume(volume, args)

    def unexport_volume(self, volume: str, args: Args) -> None:
        self.inner.unexport_volume(volume, args)

    def set_next_hop(self, router: str, args: Args) -> None:
        self.inner.set_next_hop(router, args)
