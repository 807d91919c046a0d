"""The logical thread: the one thread that owns the model, the lock table and the queues.

It wakes on events (:mod:`tropic.txn.events`: submissions, worker completions, rollback starts, kills,
calls), takes every event queued meanwhile as one batch, lets the scheduler start what may start, and ends
the batch with one group commit (:mod:`tropic.txn.commit`); results are announced and work dispatched
only once durable. This module also starts and stops the threads around it: the executor's workers and,
for a pipelined store, the store writer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, assert_never

from tropic.errors import ControllerStopped, TropicError
from tropic.records.record import Transaction
from tropic.txn.commit import GroupCommit
from tropic.txn.events import Call, Durable, Event, Finished, Kill, Resume, RollbackStarts, Stop, Submit
from tropic.txn.scheduler import Scheduler
from tropic.txn.watchdog import Watchdog
from tropic.txn.worker import Executor

RUNNING_WAKE_S = 0.05  # while work is on the devices, wake up this often to persist step progress


class LogicalThread:
    """Runs the event loop on its own thread; other threads only put events (:meth:`put`, :meth:`call`)."""

    def __init__(
        self, scheduler: Scheduler, commit: GroupCommit, watchdog: Watchdog, executor: Executor
    ) -> None:
        self.scheduler = scheduler
        self.commit = commit
        self.watchdog = watchdog
        self.executor = executor
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.fatal: TropicError | None = None  # why the loop stopped on its own, if it did

    # --- lifecycle (client threads) ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        put = self._events.put
        self.commit.open(lambda: put(Durable()))
        self.executor.start(finished=lambda t: put(Finished(t)), progress=self._rollback_starts)
        self._thread = threading.Thread(target=self._run, name="tropic-logical", daemon=True)
        self._thread.start()
        put(Resume())  # retry restored deferred work, dispatch restored in-flight work

    def stop(self) -> None:
        """Stop taking work, let in-flight transactions finish, and stop the threads."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._events.put(Stop())
        thread.join()
        self.executor.stop()
        self.commit.close()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def check_alive(self) -> None:
        if self.fatal is not None:
            raise ControllerStopped(f"the controller stopped: {self.fatal.message}")
        if self._thread is not None and not self._thread.is_alive():
            raise ControllerStopped("the controller's logical thread is not running")

    def put(self, event: Event) -> None:
        self._events.put(event)

    def kill(self, t: Transaction) -> None:
        """Tell the loop ``t`` should be killed (nothing to tell while it is not started)."""
        if self._thread is not None:
            self._events.put(Kill(t))

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the logical thread and return its result (at once, when not started or when
        called from the logical thread itself)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()
        c = Call(fn)
        self._events.put(c)
        reply = c.reply
        while not reply.done.wait(0.5):
            self.check_alive()
        if reply.error is not None:
            raise reply.error
        return reply.result

    def _rollback_starts(self, t: Transaction) -> None:
        """A worker is about to undo ``t``'s steps: store "rolling back" first, so that a recovery never
        redoes forward steps that were undone (it resumes the rollback instead)."""
        stored = threading.Event()
        self._events.put(RollbackStarts(t, stored))
        while not stored.wait(0.5):
            if self.fatal is not None or self._thread is None or not self._thread.is_alive():
                return  # the controller is gone: nothing will be stored, the recovery decides

    # --- the logical thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except TropicError as e:
            self.fatal = e
        except Exception as e:  # a bug must not leave callers waiting forever: record it, wake everyone
            self.fatal = TropicError(f"internal error on the logical thread: {type(e).__name__}: {e}")
        finally:
            self.commit.wake_waiters()

    def _loop(self) -> None:
        events = self._events
        scheduler, commit = self.scheduler, self.commit
        running = scheduler.running
        stop = False
        while True:
            try:
                wait = 0.0 if scheduler.pending else RUNNING_WAKE_S if running else None
                batch = [events.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            released = False
            calls: list[Call] = []
            commit.announce_durable()  # results first: they should not wait for the new work below
            for ev in batch:
                match ev:
                    case Submit(t):
                        scheduler.submit(t)
                    case Finished(t):
                        scheduler.finish(t)
                        released = True
                    case RollbackStarts(t, stored):  # store it before the worker's first undo
                        commit.record(t)
                        commit.when_stored(stored)
                    case Kill() | Resume():
                        released = True  # re-examine the queues; a running one is handled by its worker
                        scheduler.retry_all()
                    case Call():
                        calls.append(ev)
                    case Stop():
                        stop = True
                    case Durable():
                        pass  # it woke the loop: the written batches were announced above
                    case _:
                        assert_never(ev)
            if released and commit.reported:
                # Settle finished transactions before simulating new work: their latency should not
                # include the next batch's simulations (a pipelined store writes them meanwhile).
                commit.persist()
            if not stop:
                scheduler.schedule()
            self.watchdog.check(running)
            commit.save_progress(running.values())
            commit.persist()
            for c in calls:
                reply = c.reply
                try:
                    reply.result = c.fn()
                except BaseException as e:  # handed back to the caller's thread
                    reply.error = e
                reply.done.set()
            if stop and not running:
                commit.persist(wait=True)
                return
