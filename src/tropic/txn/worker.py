"""Physical execution: replay a transaction's action log on the devices, undoing in reverse on failure.

The same functions serve the embedded controller's worker threads (:class:`LocalExecutor`) and worker
processes in distributed mode. An *executor* takes started transactions and reports each one back when
its physical work is over (committed steps, or a finished rollback).
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from tropic.drivers.base import Driver, Step
from tropic.errors import DriverError, TransactionKilled, TropicError
from tropic.txn.record import StepOutcome, Transaction
from tropic.txn.states import State, move

Report = Callable[[Transaction], None]


def run_step(t: Transaction, driver: Driver, step: Step) -> TropicError | None:
    """Execute one step, record its outcome on ``t``, and return its error (None on success)."""
    started = time.time()
    error: TropicError | None = None
    try:
        driver.execute(step)
    except TropicError as e:
        error = e
    except Exception as e:  # a driver bug or an unexpected device answer: contain it to this step
        message = f"{driver.name}: {type(e).__name__}: {e} during {step.describe()}"
        error = DriverError(message, path=step.path)
    t.steps.append(
        StepOutcome(
            step.index,
            step.path,
            step.action,
            step.undo,
            "done" if error is None else "failed",
            started,
            time.time(),
            None if error is None else error.to_dict(),
        )
    )
    return error


def replay(t: Transaction, driver: Driver, on_rollback: Report | None = None) -> None:
    """Run the forward steps not yet done (all of them, unless resuming after a crash); roll back on
    failure. A transaction recovered while rolling back resumes its rollback. Leaves ``t`` STARTED on
    success, ROLLING_BACK after a rollback (with ``left_behind`` set if an undo failed)."""
    if t.state is not State.STARTED:
        if t.state is State.KILLED:
            move(t, State.ROLLING_BACK)
        undone = {s.index for s in t.steps if s.undo and s.status == "done"}
        # Undo every step not known to be undone: undo actions are idempotent, so undoing a step that
        # never reached its device is harmless, and one that may have reached it is undone.
        order = [i for i in reversed(range(len(t.actions))) if i not in undone]
        interrupted = None if t.error else TransactionKilled(f"transaction {t.id} was interrupted")
        rollback(t, driver, order, interrupted)
        return
    finished = {s.index for s in t.steps if not s.undo and s.status == "done"}
    done: list[int] = []
    failure: TropicError | None = None
    failed_at: int | None = None
    for i, a in enumerate(t.actions):
        if i in finished:
            done.append(i)
            continue
        if t.kill_requested:
            failure = TransactionKilled(f"transaction {t.id} was killed before step {i} ({a.action})")
            break
        err = run_step(t, driver, Step(t.id, i, a.path, a.action, a.args))
        if err is None:
            done.append(i)
        else:
            failure, failed_at = err, i
            break
    if failure is None:
        return
    if isinstance(failure, TransactionKilled):
        move(t, State.KILLED)
    move(t, State.ROLLING_BACK)
    if on_rollback is not None:
        on_rollback(t)
    # The failed step may have taken effect before failing: undo it too (undo actions are idempotent).
    order = ([failed_at] if failed_at is not None else []) + done[::-1]
    rollback(t, driver, order, failure)


def rollback(t: Transaction, driver: Driver, order: list[int], failure: TropicError | None) -> None:
    """Undo steps in ``order``; stop at the first failed undo and list what stays on the devices."""
    if failure is not None:
        t.error = failure.to_dict()
    for pos, i in enumerate(order):
        a = t.actions[i]
        err = run_step(t, driver, Step(t.id, i, a.undo_path, a.undo_action, a.undo_args, undo=True))
        if err is not None:
            left: dict[str, None] = {}
            for j in order[pos:]:
                for p in t.actions[j].touches or (t.actions[j].path,):
                    left[p] = None
            t.left_behind = sorted(left)
            t.error = {**(t.error or {}), "undo_error": err.to_dict()}
            return


class Executor(ABC):
    """Where started transactions' physical steps run."""

    @abstractmethod
    def start(self, finished: Report, progress: Report) -> None:
        """Begin taking work; call ``finished(t)`` when a transaction's physical work is over and
        ``progress(t)`` when it starts rolling back."""

    @abstractmethod
    def submit(self, t: Transaction) -> None: ...

    @abstractmethod
    def stop(self) -> None:
        """Finish the transactions taken and stop."""


class LocalExecutor(Executor):
    """Worker threads in the controller's process: non-conflicting transactions run concurrently."""

    def __init__(self, driver: Driver, workers: int = 8) -> None:
        self.driver = driver
        self.workers = workers
        self._work: queue.SimpleQueue[Transaction | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self, finished: Report, progress: Report) -> None:
        def loop() -> None:
            while True:
                t = self._work.get()
                if t is None:
                    return
                try:
                    replay(t, self.driver, progress)
                finally:
                    finished(t)

        self._threads = [
            threading.Thread(target=loop, name=f"tropic-worker-{i}", daemon=True) for i in range(self.workers)
        ]
        for th in self._threads:
            th.start()

    def submit(self, t: Transaction) -> None:
        self._work.put(t)

    def stop(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for th in self._threads:
            th.join()
        self._threads = []
