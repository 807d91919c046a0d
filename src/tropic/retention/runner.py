"""Retention as part of a service: a thread that runs a pass (:func:`~tropic.retention.sqlite.retain`,
or :func:`~tropic.retention.zk.retain_zk` on the leader of a ZooKeeper store) at start and then every
``interval`` seconds, logging what it archived and removed."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from tropic.errors import TropicError
from tropic.retention.policy import Retention
from tropic.retention.sqlite import PassResult, retain
from tropic.store.archive import Archive
from tropic.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from tropic.store.zk import ZooKeeperStore

log = logging.getLogger("tropic.retention")

INTERVAL_S = 300.0


class RetentionThread:
    """Runs retention passes on ``store`` until stopped. A failed pass (e.g. the archive's disk is full)
    is logged and tried again at the next interval; nothing is removed that was not archived."""

    def __init__(
        self,
        store: SQLiteStore | ZooKeeperStore,
        archive: Archive,
        policy: Retention,
        *,
        interval: float = INTERVAL_S,
    ) -> None:
        self.store, self.archive, self.policy, self.interval = store, archive, policy, interval
        self.passes = 0
        self.removed = 0
        self._known: dict[str, list[tuple[int, float]]] = {}  # ZooKeeper archive chunks read before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tropic-retention", daemon=True)

    def start(self) -> RetentionThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                result = self.run_pass()
                if result.removed:
                    log.info(
                        "retention: archived %d and removed %d records in %d files under %s",
                        result.archived,
                        result.removed,
                        result.files,
                        self.archive.folder,
                    )
            except TropicError as e:
                log.error("retention pass failed (tried again in %.0f s): %s", self.interval, e)
            if self._stop.wait(self.interval):
                return

    def run_pass(self) -> PassResult:
        """One pass now, counted (the thread's own, or a caller's while the thread is stopped)."""
        result = self._pass()
        self.passes += 1
        self.removed += result.removed
        return result

    def _pass(self) -> PassResult:
        if isinstance(self.store, SQLiteStore):
            return retain(self.store, self.archive, self.policy)
        from tropic.retention.zk import retain_zk

        return retain_zk(self.store, self.archive, self.policy, known=self._known)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
