"""The controller a replica runs while it leads: it refuses work while ZooKeeper is unreachable, and a
durable submission waits for ZooKeeper (not a local disk) to confirm it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from tropic.errors import ControllerStopped, StoreError
from tropic.model import Value
from tropic.records import Transaction
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import ZooKeeperUnavailable
from tropic.txn.controller import Controller, KeyBinding


class ReplicatedController(Controller):
    """A :class:`~tropic.txn.controller.Controller` on a :class:`~tropic.store.zk.ZooKeeperStore`."""

    zookeeper_ok: Callable[[], bool] | None = None  # set by the replica: is the session connected?

    def submit_many(
        self,
        calls: Sequence[tuple[str, Mapping[str, Value]]],
        *,
        submitter: str = "local",
        durable: bool = False,
        timeout: float = 30.0,
        keys: Sequence[KeyBinding | None] | None = None,
        checked: bool = False,
    ) -> list[Transaction]:
        store = self.store
        hosts = store.hosts if isinstance(store, ZooKeeperStore) else "?"
        if self.zookeeper_ok is not None and not self.zookeeper_ok():
            raise ZooKeeperUnavailable(
                f"ZooKeeper at {hosts} is unreachable or has lost its quorum: this controller accepts no "
                "work until it is back (nothing accepted so far is lost)",
                hosts=hosts,
            )
        txns = super().submit_many(calls, submitter=submitter, timeout=timeout, keys=keys, checked=checked)
        if durable:
            deadline = time.monotonic() + timeout
            while not all(t.accepted for t in txns):
                self.check_accepting(txns)
                if time.monotonic() > deadline:
                    waiting = [t.id for t in txns if not t.accepted]
                    raise StoreError(f"transaction(s) {waiting} were not stored within {timeout} s")
                time.sleep(0.002)
        return txns

    def check_accepting(self, txns: Sequence[Transaction]) -> None:
        """While ``txns`` wait to be stored: a stopped controller, or ZooKeeper gone, is an error now."""
        if self.fatal is not None:
            raise ControllerStopped(f"the controller stopped: {self.fatal.message}")
        if self.zookeeper_ok is not None and not self.zookeeper_ok():
            waiting = [t.id for t in txns if not t.accepted]
            hosts = self.store.hosts if isinstance(self.store, ZooKeeperStore) else "?"
            raise ZooKeeperUnavailable(
                f"ZooKeeper at {hosts} became unreachable before transaction(s) {waiting} were "
                "stored; they are stored when the quorum is back (retry with the same "
                "Idempotency-Key to get them)",
                hosts=hosts,
            )
