"""The leader's side of distributed mode: :class:`RemoteExecutor`, the controller's
:class:`~tropic.txn.worker.Executor` when worker processes run the physical steps.

Started transactions reach the workers through the store's physical queue (see
:mod:`tropic.txn.remote.protocol`). This executor watches the workers' completion reports, brings the
leader's copy of each transaction to what its worker did and hands it to the controller, and deletes a
report once the transactions in it are durably final. Kill requests travel as ephemeral
``/phys/kill/<txn>`` nodes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.recipe.watchers import ChildrenWatch

from tropic.records.record import Transaction
from tropic.store.zk import Paths
from tropic.txn.remote.protocol import apply_report, loads
from tropic.txn.worker import Executor, Report

log = logging.getLogger(__name__)


class RemoteExecutor(Executor):
    """The controller's executor in distributed mode: workers run the transactions; this collects their
    completion reports. Transactions reach the workers through the store's physical queue, so
    :meth:`submit` only remembers the transaction (restored in-flight ones are already queued)."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._running: dict[int, Transaction] = {}
        self._parked: dict[int, tuple[str, dict[str, Any]]] = {}  # reports that came before submit()
        self._reports: dict[str, set[int]] = {}  # report node -> transactions not yet durably final
        self._seen: set[str] = set()
        self._killed: set[int] = set()
        self._finished: Report | None = None
        self._is_final: Callable[[int], bool] = lambda txn: False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: ChildrenWatch | None = None
        self._names: list[str] = []
        self.reports = 0

    def adopt(self, is_final: Callable[[int], bool]) -> None:
        """``is_final(txn)``: whether ``txn`` is final *durably* (its report is then stale and dropped)."""
        self._is_final = is_final

    def start(self, finished: Report, progress: Report) -> None:
        self._finished = finished
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="tropic-remote-executor", daemon=True)
        self._thread.start()

        def on_children(names: list[str]) -> bool:
            if self._stopping.is_set():
                return False
            self._names = names
            self._wake.set()
            return True

        self._watch = ChildrenWatch(self.client, Paths.DONE, on_children)

    def submit(self, t: Transaction) -> None:
        with self._lock:
            parked = self._parked.pop(t.id, None)
            if parked is None:
                self._running[t.id] = t
                return
        self._complete(t, *parked)

    def durable(self, t: Transaction) -> None:
        """A state change of ``t`` is durable (controller listener): forget reports that are done."""
        if not t.final:
            return
        with self._lock:
            done = [name for name, ids in self._reports.items() if t.id in ids and not ids - {t.id}]
            for ids in self._reports.values():
                ids.discard(t.id)
            for name in done:
                del self._reports[name]
        for name in done:
            self.client.delete_async(f"{Paths.DONE}/{name}")

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for txn in list(self._killed):
            self.client.delete_async(f"{Paths.KILL}/{txn}")
        self._killed.clear()

    # --- the collecting thread ---
    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self._collect()
                self._forward_kills()
            except Exception:  # ZooKeeper trouble: the watch fires again, the next round retries
                log.debug("remote executor round failed", exc_info=True)
                time.sleep(0.1)

    def _collect(self) -> None:
        new = [n for n in self._names if n not in self._seen]
        if not new:
            return
        pending = [(n, self.client.get_async(f"{Paths.DONE}/{n}")) for n in new]
        for name, res in pending:
            try:
                data = res.get(timeout=30)[0]
            except NoNodeError:
                self._seen.add(name)
                continue
            self._seen.add(name)
            reports = [r for r in loads(data) if not self._is_final(int(r["id"]))]
            with self._lock:
                # Registered before any is handed on: the node is deleted only once all of them are durable.
                if reports:
                    self._reports[name] = {int(r["id"]) for r in reports}
            if not reports:
                self.client.delete_async(f"{Paths.DONE}/{name}")
                continue
            for report in reports:
                txn = int(report["id"])
                with self._lock:
                    t = self._running.pop(txn, None)
                    if t is None:
                        self._parked[txn] = (name, report)  # restored in flight, not yet submitted
                        continue
                self._complete(t, name, report)
        if len(self._seen) > 100_000:
            self._seen &= set(self._names)

    def _complete(self, t: Transaction, name: str, report: dict[str, Any]) -> None:
        apply_report(t, report)
        self.reports += 1
        with self._lock:
            self._killed.discard(t.id)
        assert self._finished is not None
        self._finished(t)

    def _forward_kills(self) -> None:
        with self._lock:
            wanted = [t.id for t in self._running.values() if t.kill_requested and t.id not in self._killed]
            self._killed.update(wanted)
        for txn in wanted:
            self.client.create_async(f"{Paths.KILL}/{txn}", b"", ephemeral=True)
