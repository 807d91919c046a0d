"""The watchdog: rolls back in-flight transactions whose worker stopped heart-beating.

A worker waiting on a hung device still beats (the step deadline of :mod:`tropic.txn.worker` covers that);
one that shows no sign of life for ``limit`` seconds is presumed dead, and its transaction is handed,
killed, to another worker to be rolled back. Runs on the logical thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from tropic.errors import TransactionKilled
from tropic.records.record import Transaction
from tropic.records.states import State, move
from tropic.txn.commit import GroupCommit
from tropic.txn.worker import Executor

CHECK_S = 0.1  # how often the heartbeats are looked at


class Watchdog:
    """Looks at the heartbeats of running transactions; ``limit`` None turns it off."""

    def __init__(self, limit: float | None, executor: Executor, commit: GroupCommit) -> None:
        self.limit = limit  # seconds an in-flight transaction's worker may go without a heartbeat
        self.executor = executor
        self.commit = commit
        self._watched = 0.0

    def check(self, running: Mapping[int, Transaction]) -> None:
        """Hand every running transaction whose worker stopped beating to another worker, killed."""
        limit = self.limit
        if limit is None or not running:
            return
        now = time.monotonic()
        if now - self._watched < CHECK_S:
            return
        self._watched = now
        for t in list(running.values()):
            beat = self.executor.heartbeat(t.id)
            if beat is None or now - beat <= limit:
                continue
            t.kill_requested = True
            if t.state is State.STARTED:
                move(t, State.KILLED)
                t.error = TransactionKilled(
                    f"transaction {t.id}: its worker showed no sign of life for {now - beat:.1f} s;"
                    " killed by the watchdog and rolled back"
                ).to_dict()
            self.commit.record(t)
            self.commit.dispatch(t)  # another worker rolls it back (replay resumes a KILLED one)
