"""The controller a replica runs while it leads: refuses work while ZooKeeper is unreachable, and stores
each submission's idempotency key in the same commit as the transaction."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping

from tropic.errors import ControllerStopped, StoreError
from tropic.model import Value
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import ZooKeeperUnavailable
from tropic.txn.controller import Controller
from tropic.txn.record import Transaction

# (key id, request fingerprint) of the submission being made on this thread (see DurableKeys.run).
KEY_BINDING: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "tropic_key_binding", default=None
)


class ReplicatedController(Controller):
    """A :class:`~tropic.txn.controller.Controller` on a :class:`~tropic.store.zk.ZooKeeperStore`."""

    zookeeper_ok: Callable[[], bool] | None = None  # set by the replica: is the session connected?

    def submit(
        self,
        procedure: str,
        args: Mapping[str, Value] | None = None,
        *,
        submitter: str = "local",
        durable: bool = False,
        timeout: float = 30.0,
    ) -> Transaction:
        store = self.store
        hosts = store.hosts if isinstance(store, ZooKeeperStore) else "?"
        if self.zookeeper_ok is not None and not self.zookeeper_ok():
            raise ZooKeeperUnavailable(
                f"ZooKeeper at {hosts} is unreachable or has lost its quorum: this controller accepts no "
                "work until it is back (nothing accepted so far is lost)",
                hosts=hosts,
            )
        binding = KEY_BINDING.get()
        if binding is None or not isinstance(store, ZooKeeperStore):
            t = super().submit(procedure, args, submitter=submitter, timeout=timeout)
        else:

            def on_logical_thread() -> Transaction:
                # The record is written by the logical thread, which is busy here: the key is bound first.
                t = Controller.submit(self, procedure, args, submitter=submitter)
                store.bind_key(t.id, *binding)
                return t

            t = self.call(on_logical_thread)
        if durable:
            deadline = time.monotonic() + timeout
            while not t.accepted:
                if self.fatal is not None:
                    raise ControllerStopped(f"the controller stopped: {self.fatal.message}")
                if self.zookeeper_ok is not None and not self.zookeeper_ok():
                    raise ZooKeeperUnavailable(
                        f"ZooKeeper at {hosts} became unreachable before transaction {t.id} was stored; it "
                        "is stored when the quorum is back (retry with the same Idempotency-Key to get it)",
                        hosts=hosts,
                    )
                if time.monotonic() > deadline:
                    raise StoreError(f"transaction {t.id} was not stored within {timeout} s")
                time.sleep(0.002)
        return t
