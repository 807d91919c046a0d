"""The ZooKeeper store's single writer: it takes the head over, then appends log entries, each in one
multi with a compare-and-set of the head.

The head's version is the fencing token. Taking over bumps the head's epoch, so the next write of a
deposed writer fails its compare-and-set; under leader election every multi also checks that the
leader's ephemeral election node still exists (the election's session is alive). A deposed writer gets
:class:`LeadershipLost` and never writes again. When a multi's outcome is unknown (the connection was
lost), the head tells whether it went through before it is sent again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)

from tropic.errors import StoreError
from tropic.retry import RetryPolicy
from tropic.store.zk_layout import Head, Paths
from tropic.store.zkclient import bounded_call

__all__ = ["LeadershipLost", "LogWriter"]


class LeadershipLost(StoreError):
    """This store may no longer write: another controller took over, or the election session ended."""

    code = "leadership_lost"


# Contenders for the head retry at once, then back off (jittered) so that they stop colliding; the
# store's timeout is the deadline.
TAKEOVER_RETRY = RetryPolicy(attempts=None, backoff_s=0.005, max_backoff_s=0.2, jitter=0.5)
# A commit (or the read that tells whether it went through) waits for the quorum to come back for as long
# as the session lives: nothing reported is dropped. Pauses stay short so that recovery is noticed soon.
QUORUM_WAIT = RetryPolicy(attempts=None, backoff_s=0.05, max_backoff_s=0.2, jitter=0.25, deadline_s=None)


def _rolled_back(e: Exception) -> bool:
    return type(e).__name__ == "RolledBackError"


class LogWriter:
    """Reads the head; once :meth:`take_over` made this process the writer, appends to the log.

    ``where`` names the store in errors; ``timeout``: seconds a read or a takeover may wait for a quorum.
    """

    def __init__(
        self, client: KazooClient, *, name: str, read_only: bool, timeout: float, where: str
    ) -> None:
        self.client = client
        self.name = name
        self.read_only = read_only
        self.timeout = timeout
        self.where = where
        self.head: Head | None = None  # set once this store is the writer
        self.session: int | None = None
        self.lock_node: str | None = None  # election node every multi checks (None: no election)
        self.dead: StoreError | None = None
        self.abdicated = False

    def call(self, start: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        return bounded_call(self.client, start, what=what, timeout=timeout or self.timeout)

    def read_head(self) -> Head | None:
        try:
            data, stat = self.call(partial(self.client.get_async, Paths.HEAD), f"read {Paths.HEAD}")
        except NoNodeError:
            return None
        return Head.decode(data, stat.version, self.where)

    def _ensure_layout(self) -> None:
        for path in Paths.ALL:
            with contextlib.suppress(NodeExistsError):
                self.call(partial(self.client.ensure_path_async, path), f"create {path}")

    # --- leadership ---------------------------------------------------------------------------------
    def take_over(self) -> Head:
        """Become the store's only writer: bump the head's epoch (deposing any earlier writer)."""
        if self.read_only:
            raise StoreError(f"{self.where} was opened read-only")
        if self.head is not None:
            return self.head
        self._ensure_layout()

        def attempt() -> Head:
            head = self.read_head()
            now = time.time()
            if head is None:
                new = Head(1, self.name, 0, None, now)
                self.call(partial(self.client.create_async, Paths.HEAD, new.encode()), f"create {Paths.HEAD}")
                new.version = 0
            else:
                new = Head(head.epoch + 1, self.name, head.seq, head.snap, now)
                stat = self.call(
                    partial(self.client.set_async, Paths.HEAD, new.encode(), head.version),
                    f"take over {Paths.HEAD}",
                )
                new.version = stat.version
            return new

        try:
            # Another writer moved first: read again and depose it.
            new = replace(TAKEOVER_RETRY, deadline_s=self.timeout).call(
                attempt, retry_on=(NodeExistsError, BadVersionError)
            )
        except (NodeExistsError, BadVersionError):
            raise StoreError(
                f"{self.where}: could not take over: other writers kept moving its head "
                f"for {self.timeout:g} s"
            ) from None
        self.head = new
        self.session = self.client.client_id[0] if self.client.client_id else None
        return new

    def check_writable(self) -> Head:
        if self.dead is not None:
            raise self.dead
        if self.abdicated:
            self.dead = LeadershipLost(f"{self.where}: this controller stepped down")
            raise self.dead
        return self.take_over()

    def lost(self, why: str) -> LeadershipLost:
        self.dead = LeadershipLost(f"{self.where}: {why}; this controller no longer writes")
        return self.dead

    # --- appending ----------------------------------------------------------------------------------
    def append(self, head: Head, chunk: list[tuple[bytes, bytes | None]], snap: str | None) -> int:
        """Write one log entry of ``chunk`` (units and their queue items; none: only the head moves) and
        make ``snap`` the current snapshot (None: keep it). Updates ``head``; returns the entry's bytes."""
        now = time.time()
        new = Head(
            head.epoch,
            head.leader,
            head.seq + (1 if chunk else 0),
            snap if snap is not None else head.snap,
            head.since,
            head.first_commit if head.first_commit is not None else (now if chunk else None),
            head.commits + 1,
            head.version,
        )
        body = b"[" + b",".join(b for b, _ in chunk) + b"]"
        queued = [q for _, q in chunk if q is not None]

        def start() -> Any:
            tx = self.client.transaction()
            if self.lock_node is not None:
                tx.check(self.lock_node, 0)
            tx.set_data(Paths.HEAD, new.encode(), head.version)
            if chunk:
                tx.create(f"{Paths.WAL}/{Paths.seq(new.seq)}", body)
            if queued:
                tx.create(f"{Paths.QUEUE}/{Paths.seq(new.seq)}", b"[" + b",".join(queued) + b"]")
            return tx.commit_async()

        self._run_multi(start, head, new)
        head.version += 1
        head.seq = new.seq
        head.snap = new.snap
        head.first_commit = new.first_commit
        head.commits = new.commits
        return len(body) if chunk else 0

    def _unknown_outcome(self) -> tuple[type[BaseException], ...]:
        """What kazoo raises when a request may or may not have been applied (no answer came back)."""
        return (ConnectionLoss, OperationTimeoutError, self.client.handler.timeout_exception)

    def _run_multi(self, start: Callable[[], Any], head: Head, new: Head) -> None:
        """Commit one multi; when its outcome is unknown (connection lost), find out from the head and
        resend if it did not happen. Waits out a lost quorum for as long as the session lives."""
        unknown = self._unknown_outcome()

        def attempt() -> list[Any] | None:
            if (
                self.session is not None
                and self.client.client_id
                and self.client.client_id[0] != self.session
            ):
                raise self.lost("the ZooKeeper session expired (another controller may have taken over)")
            try:
                return list(start().get(timeout=max(self.timeout, 5.0)))
            except SessionExpiredError:
                raise self.lost("the ZooKeeper session expired") from None
            except ConnectionClosedError:
                raise self.lost("the ZooKeeper client was closed") from None
            except unknown:
                if self._applied(head, new):
                    return None
                raise

        results = QUORUM_WAIT.call(attempt, retry_on=unknown)
        if results is None:
            return  # it went through before the answer was lost
        failure = next((r for r in results if isinstance(r, Exception) and not _rolled_back(r)), None)
        if failure is None:
            return
        if isinstance(failure, NoNodeError) and self.lock_node is not None:
            raise self.lost(f"its election node {self.lock_node} is gone")
        if isinstance(failure, BadVersionError | NodeExistsError):
            if self._applied(head, new):
                return  # an earlier attempt of this very commit went through
            raise self.lost("another controller took over the store (the head moved on)")
        raise self.lost(f"the commit failed: {type(failure).__name__}")

    def _applied(self, head: Head, new: Head) -> bool:
        """After an unknown outcome: True if ``new`` is the head (our multi went through), False if the
        head is unchanged; LeadershipLost if someone else moved it. Waits for a quorum."""

        def read() -> tuple[bytes, Any]:
            try:
                data, stat = self.client.get_async(Paths.HEAD).get(timeout=max(self.timeout, 5.0))
            except SessionExpiredError:
                raise self.lost("the ZooKeeper session expired") from None
            except ConnectionClosedError:
                raise self.lost("the ZooKeeper client was closed") from None
            return data, stat

        data, stat = QUORUM_WAIT.call(read, retry_on=self._unknown_outcome())
        current = Head.decode(data, stat.version, self.where)
        if stat.version == head.version:
            return False
        if stat.version == head.version + 1 and current.epoch == new.epoch and current.commits == new.commits:
            return True
        raise self.lost(f"another controller took over the store (epoch {current.epoch})")
