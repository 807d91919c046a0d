"""The store writer: group commit off the logical thread.

With a pipelined store (:attr:`tropic.store.base.Store.pipelined`) the logical thread seals each batch of
changes and hands it here instead of waiting for the disk; it goes on simulating and locking the next
transactions meanwhile. This thread writes the batches in order, every batch that queued up during the
previous write in one store transaction (one fsync), and then wakes the logical thread, which announces
results and dispatches steps only for what is durable. A slow disk therefore makes batches bigger, not the
logical thread slower.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tropic.errors import StoreError, TropicError
from tropic.store.base import Store


class StoreWriter:
    """Writes sealed batches in order; ``durable`` is the sequence number of the last one written."""

    def __init__(self, store: Store, wake: Callable[[], None]) -> None:
        self.store = store
        self._wake = wake
        self._cond = threading.Condition()
        self._queue: list[object] = []
        self.queued = 0  # sequence number of the last batch handed over
        self.durable = 0  # ... and of the last one written
        self.error: TropicError | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tropic-store-writer", daemon=True)
        self._thread.start()

    def put(self, batch: object) -> int:
        """Queue ``batch`` (from ``store.seal()``); returns its sequence number."""
        with self._cond:
            self._queue.append(batch)
            self.queued += 1
            self._cond.notify()
            return self.queued

    def wait(self, seq: int) -> None:
        """Block until batch ``seq`` is written; raises the write's error if it failed."""
        with self._cond:
            while self.durable < seq and self.error is None:
                self._cond.wait(0.5)
        if self.durable < seq and self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                batches, self._queue = self._queue, []
                upto = self.queued
            try:
                self.store.write(batches)
            except TropicError as e:
                self._failed(e)
                return
            except Exception as e:  # a bug must not leave the logical thread waiting forever
                self._failed(StoreError(f"the store writer failed: {type(e).__name__}: {e}"))
                return
            with self._cond:
                self.durable = upto
                self._cond.notify_all()
            self._wake()

    def _failed(self, error: TropicError) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()
        self._wake()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
