"""Physical execution: replay a transaction's action log on the devices, undoing in reverse on failure.

The same functions serve the embedded controller's worker threads (:class:`LocalExecutor`) and worker
processes in distributed mode. An *executor* takes started transactions and reports each one back when
its physical work is over (committed steps, or a finished rollback).

Every device call has a deadline (:class:`Deadlines`): a worker runs the call on its helper thread
(:class:`DeviceCaller`) and abandons it when the deadline passes; the step then counts as failed. Before
undoing a step whose call timed out, the worker asks the driver whether its effect happened
(:meth:`Driver.probe`) and skips the undo when it did not. While it works on a transaction, a worker
heartbeats, so the controller's watchdog can tell a dead worker from a slow device and roll its
transaction back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tropic.drivers.base import Driver, Step
from tropic.errors import DeviceTimeout, DriverError, TransactionKilled, TropicError
from tropic.model import MODEL_ONLY_ACTIONS
from tropic.records.record import StepOutcome, Transaction
from tropic.records.states import State, move

Report = Callable[[Transaction], None]
log = logging.getLogger(__name__)

BEAT_S = 0.1  # how often a worker waiting on a device shows it is alive


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long a device may take for one physical action before the call is abandoned (seconds)."""

    default: float = 120.0
    actions: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({"migrate": 900.0}))
    probe: float = 30.0  # the "did it happen?" read before an undo

    def of(self, action: str) -> float:
        return float(self.actions.get(action, self.default))


@dataclass(slots=True)
class _Job:
    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def _serve(inbox: queue.SimpleQueue[_Job | None]) -> None:
    while True:
        job = inbox.get()
        if job is None:
            return
        try:
            job.result = job.fn()
        except BaseException as e:  # handed to the worker, which decides what it means
            job.error = e
        finally:
            job.done.set()


class DeviceCaller:
    """Runs one worker's device calls on a helper thread so that a call that hangs can be abandoned. The
    helper of an abandoned call is left to finish (or hang) on its own; a fresh one takes the next call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.abandoned = 0
        self._inbox: queue.SimpleQueue[_Job | None] | None = None
        self._spawned = 0

    def call(
        self,
        fn: Callable[[], Any],
        timeout: float,
        *,
        what: str,
        path: str | None = None,
        beat: Callable[[], None] | None = None,
    ) -> Any:
        """``fn()``'s result, or what it raised; :class:`DeviceTimeout` when ``timeout`` passes first."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = queue.SimpleQueue()
            self._spawned += 1
            name = f"{self.name}-{self._spawned}"
            threading.Thread(target=_serve, args=(inbox,), name=name, daemon=True).start()
        job = _Job(fn)
        inbox.put(job)
        deadline = time.monotonic() + timeout
        while not job.done.wait(max(0.0, min(BEAT_S, deadline - time.monotonic()))):
            if beat is not None:
                beat()
            if time.monotonic() >= deadline:
                inbox.put(None)  # the helper exits once the hung call returns, if ever
                self._inbox = None
                self.abandoned += 1
                raise DeviceTimeout(
                    f"{what}: no answer within {timeout:g} s; the call was abandoned", path=path
                )
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        if self._inbox is not None:
            self._inbox.put(None)
            self._inbox = None


@dataclass(slots=True)
class DeviceLink:
    """How a worker reaches the devices: deadlines, the helper thread calls run on, its heartbeat."""

    deadlines: Deadlines = field(default_factory=Deadlines)
    caller: DeviceCaller | None = None
    beat: Callable[[], None] | None = None

    def call(
        self, fn: Callable[[], Any], timeout: float, what: str, path: str | None, *, prompt: bool = False
    ) -> Any:
        """``fn()`` under ``timeout``; a ``prompt`` call (it cannot block) runs on the worker itself."""
        if self.beat is not None:
            self.beat()
        if self.caller is None or prompt:
            return fn()
        return self.caller.call(fn, timeout, what=what, path=path, beat=self.beat)


def run_step(
    t: Transaction, driver: Driver, step: Step, *, link: DeviceLink | None = None
) -> TropicError | None:
    """Execute one step, record its outcome on ``t``, and return its error (None on success)."""
    started = time.time()
    error: TropicError | None = None
    try:
        if step.action in MODEL_ONLY_ACTIONS:
            pass  # a model-only action (cordon): the model changed when it committed; no device knows it
        elif link is None:
            driver.execute(step)
        else:
            what = f"{driver.name}: {step.describe()}"
            deadline = link.deadlines.of(step.action)
            link.call(lambda: driver.execute(step), deadline, what, step.path, prompt=driver.prompt(step))
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


def happened(driver: Driver, step: Step, link: DeviceLink | None = None) -> bool | None:
    """The "did it happen?" check of a failed step: the driver's probe, None when it cannot tell."""
    try:
        if link is None:
            return driver.probe(step)
        what = f"{driver.name}: probe of {step.describe()}"
        found: bool | None = link.call(lambda: driver.probe(step), link.deadlines.probe, what, step.path)
        return found
    except Exception:  # an unreadable device cannot tell: undo anyway (undo actions are idempotent)
        return None


def replay(
    t: Transaction, driver: Driver, on_rollback: Report | None = None, *, link: DeviceLink | None = None
) -> None:
    """Run the forward steps not yet done (all of them, unless resuming after a crash); roll back on
    failure. A transaction recovered while rolling back resumes its rollback. Leaves ``t`` STARTED on
    success, ROLLING_BACK after a rollback (with ``left_behind`` set if an undo failed)."""
    if t.state is not State.STARTED:
        if t.state is State.KILLED:
            move(t, State.ROLLING_BACK)
        undone = {s.index for s in t.steps if s.undo and s.status in ("done", "skipped")}
        # Undo every step not known to be undone: undo actions are idempotent, so undoing a step that
        # never reached its device is harmless, and one that may have reached it is undone.
        order = [i for i in reversed(range(len(t.actions))) if i not in undone]
        interrupted = None if t.error else TransactionKilled(f"transaction {t.id} was interrupted")
        rollback(t, driver, order, interrupted, link=link)
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
        err = run_step(t, driver, Step(t.id, i, a.path, a.action, a.args), link=link)
        if err is None:
            done.append(i)
        else:
            failure, failed_at = err, i
            break
    if failure is None and t.kill_requested:  # killed during its last step: it is not final yet
        failure = TransactionKilled(f"transaction {t.id} was killed during its last step")
    if failure is None:
        return
    if isinstance(failure, TransactionKilled):
        move(t, State.KILLED)
    move(t, State.ROLLING_BACK)
    if on_rollback is not None:
        on_rollback(t)
    order = done[::-1]
    if failed_at is not None:
        # The failed step may have taken effect before failing: undo it too (undo actions are idempotent).
        # When its device did not answer in time, ask it first whether it happened: a device that may be
        # in trouble is spared an undo it does not need.
        a = t.actions[failed_at]
        step = Step(t.id, failed_at, a.path, a.action, a.args)
        if isinstance(failure, DeviceTimeout) and happened(driver, step, link) is False:
            now = time.time()
            t.steps.append(StepOutcome(failed_at, a.undo_path, a.undo_action, True, "skipped", now, now))
        else:
            order = [failed_at, *order]
    rollback(t, driver, order, failure, link=link)


def rollback(
    t: Transaction,
    driver: Driver,
    order: list[int],
    failure: TropicError | None,
    *,
    link: DeviceLink | None = None,
) -> None:
    """Undo steps in ``order``; stop at the first failed undo and list what stays on the devices."""
    if failure is not None:
        t.error = failure.to_dict()
    for pos, i in enumerate(order):
        a = t.actions[i]
        step = Step(t.id, i, a.undo_path, a.undo_action, a.undo_args, undo=True)
        err = run_step(t, driver, step, link=link)
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
    def submit(self, t: Transaction) -> None:
        """Take ``t`` (again, when the watchdog hands over a transaction whose worker died: a KILLED or
        ROLLING_BACK one is rolled back by :func:`replay`)."""

    @abstractmethod
    def stop(self) -> None:
        """Finish the transactions taken and stop."""

    def heartbeat(self, txn_id: int) -> float | None:
        """When (``time.monotonic()``) the worker running ``txn_id`` last showed life; None while no worker
        has it or when this executor does not track liveness (the watchdog then leaves it alone)."""
        return None


class LocalExecutor(Executor):
    """Worker threads in the controller's process: non-conflicting transactions run concurrently."""

    def __init__(self, driver: Driver, workers: int = 8, *, deadlines: Deadlines | None = None) -> None:
        self.driver = driver
        self.workers = workers
        self.deadlines = deadlines or Deadlines()
        self._work: queue.SimpleQueue[tuple[Transaction, int] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._beats: dict[int, float] = {}
        self._attempts: dict[int, int] = {}  # a transaction handed over again must not be reported twice

    def start(self, finished: Report, progress: Report) -> None:
        def loop(i: int) -> None:
            caller = DeviceCaller(f"tropic-device-{i}")
            try:
                while True:
                    item = self._work.get()
                    if item is None:
                        return
                    self._run(item[0], item[1], caller, finished, progress)
            finally:
                caller.close()

        self._threads = [
            threading.Thread(target=loop, args=(i,), name=f"tropic-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for th in self._threads:
            th.start()

    def _run(
        self, t: Transaction, attempt: int, caller: DeviceCaller, finished: Report, progress: Report
    ) -> None:
        txn_id = t.id

        def beat() -> None:
            if self._attempts.get(txn_id) == attempt:
                self._beats[txn_id] = time.monotonic()

        beat()
        try:
            replay(t, self.driver, progress, link=DeviceLink(self.deadlines, caller, beat))
        except Exception:
            # A bug, not a device failure: leave the transaction to the watchdog (its heartbeat stops).
            log.exception("worker failed on transaction %d; the watchdog will roll it back", txn_id)
            return
        if self._attempts.get(txn_id) != attempt:
            return  # the watchdog handed it to another worker meanwhile: that one reports it
        self._attempts.pop(txn_id, None)
        self._beats.pop(txn_id, None)
        finished(t)

    def submit(self, t: Transaction) -> None:
        attempt = self._attempts[t.id] = self._attempts.get(t.id, 0) + 1
        self._beats.pop(t.id, None)
        self._work.put((t, attempt))

    def heartbeat(self, txn_id: int) -> float | None:
        return self._beats.get(txn_id)

    def stop(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for th in self._threads:
            th.join()
        self._threads = []
