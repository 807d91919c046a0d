"""Worker processes and the physical queue in ZooKeeper: transactions run on workers, a SIGKILLed worker's
transactions are resumed by another from their recorded steps, kills reach the worker, devices are shared
between processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from core.helpers import small_dc, spawn
from tropic.drivers import Fault
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import project
from tropic.scenario import host_path
from tropic.store.zk import Paths, ZooKeeperStore
from tropic.store.zkclient import open_client
from tropic.txn import FINAL, Controller, State, Transaction
from tropic.txn.remote import RemoteExecutor, Worker

TROPIC = [sys.executable, "-m", "tropic.cli"]


@dataclass
class Setup:
    controller: Controller
    devices: Path
    uri: str
    client: Any


@pytest.fixture
def leader(zk_uri: str, tmp_path: Path) -> Iterator[Setup]:
    """A controller whose transactions run on worker processes (none started yet)."""
    devices = tmp_path / "devices.db"
    model = small_dc(hosts=4, memory_mib=10**6)
    sim = SharedSimDriver(devices, faults=[Fault(probability=0.1)])
    sim.load(project(model))
    sim.save_faults()
    client = open_client(zk_uri)
    executor = RemoteExecutor(client)
    store = ZooKeeperStore(zk_uri, client=client, physical_queue=True)
    c = Controller.open(store, sim, initial=lambda: model, executor=executor)
    executor.adopt(lambda txn: c.get(txn).settled)
    c.subscribe(executor.durable)
    c.start()
    yield Setup(c, devices, zk_uri, client)
    c.stop()
    client.stop()
    client.close()
    sim.close()


WAIT_S = 60.0  # generous: how long the tests wait for what they expect


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.01)


def _in_process_worker(
    setup: Setup, name: str, stop: threading.Event, driver: SharedSimDriver | None = None
) -> Worker:
    client = open_client(setup.uri)
    w = Worker(client, driver or SharedSimDriver(setup.devices), name=name, concurrency=8)

    def run() -> None:
        try:
            w.run(stop)
        finally:
            client.stop()
            client.close()

    threading.Thread(target=run, daemon=True).start()
    return w


def _assert_clean(setup: Setup) -> None:
    c = setup.controller
    assert c.drain(60)
    report = c.check()
    assert report["consistent"], report["differences"]
    assert report["violations"] == [] and report["orphans"] == []
    assert SharedSimDriver(setup.devices).duplicates() == []
    for path in (Paths.QUEUE, Paths.CLAIMS, Paths.PROGRESS, Paths.DONE):
        # the last reports are deleted once their transactions are durably final
        _until(lambda p=path: setup.client.get_children(p) == [], f"{path} emptied")


def test_transactions_run_on_workers_and_roll_back_there(leader: Setup) -> None:
    stop = threading.Event()
    for i in range(2):
        _in_process_worker(leader, f"w{i}", stop)
    try:
        c = leader.controller
        ts = [c.submit("spawn_vm", spawn("r1", 1 + i % 4, f"v{i}", memory_mib=128)) for i in range(40)]
        _assert_clean(leader)
        states = {t.state for t in ts}
        assert states <= FINAL and State.COMMITTED in states and State.ABORTED in states  # 10% step faults
        rolled = [t for t in ts if t.state is State.ABORTED]
        assert all(State.ROLLING_BACK.value in t.times and any(s.undo for s in t.steps) for t in rolled)
    finally:
        stop.set()


def test_a_kill_reaches_the_worker_and_rolls_back(leader: Setup) -> None:
    stop = threading.Event()
    driver = SharedSimDriver(leader.devices)
    held = driver.hang(host_path("r2", 1), action="import_volume", timeout=120)  # step 3 of 4
    w = _in_process_worker(leader, "slow", stop, driver)
    try:
        c = leader.controller
        t = c.submit("spawn_vm", spawn("r2", 1, "victim", memory_mib=128))
        assert held.entered.wait(WAIT_S), "the worker never ran import_volume"
        c.kill(t.id)
        _until(lambda: t.id in w._kills, "the kill reaching the worker")
        driver.release(held)  # the step ends; the worker sees the kill and rolls back what it did
        c.wait(t, WAIT_S)
        assert t.state is State.ABORTED and State.KILLED.value in t.times
        assert t.error is not None and t.error["code"] == "killed"
        assert any(s.undo for s in t.steps)
        _assert_clean(leader)
    finally:
        driver.release()
        stop.set()


def test_a_sigkilled_workers_transactions_are_resumed_by_another(leader: Setup, tmp_path: Path) -> None:
    driver = f"sim://{leader.devices}?latency=0.05"

    def worker(name: str) -> subprocess.Popen[bytes]:
        argv = [*TROPIC, "worker", "--store", leader.uri, "--driver", driver, "--name", name]
        log = (tmp_path / f"{name}.log").open("ab")
        return subprocess.Popen(
            [*argv, "--session-timeout", "2"], stdout=log, stderr=log, start_new_session=True
        )

    first = worker("first")
    c = leader.controller
    ts: list[Transaction] = []

    def unfinished_batch_recorded() -> bool:
        """Freezes the worker (SIGSTOP) when it has recorded steps of a batch it has not finished (a
        batch's progress node goes in the same ZooKeeper transaction as its completion); otherwise lets
        it go on, with more work if it has finished everything."""
        if not leader.client.get_children(Paths.PROGRESS):
            if all(t.state in FINAL for t in ts):
                n = len(ts)
                ts.extend(
                    c.submit("spawn_vm", spawn("r1", 1 + i % 4, f"k{i}", memory_mib=128))
                    for i in range(n, n + 24)
                )
            return False
        first.send_signal(signal.SIGSTOP)
        leader.client.sync(Paths.PROGRESS)  # our server has every write the worker made before it froze
        if leader.client.get_children(Paths.PROGRESS):
            return True
        first.send_signal(signal.SIGCONT)
        return False

    _until(unfinished_batch_recorded, "the worker recording steps of a batch it has not finished")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert any(t.state not in FINAL for t in ts), "everything finished before the kill"
    second = worker("second")
    try:
        _assert_clean(leader)
        assert all(t.state in FINAL for t in ts)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert "resumed_batches': 0" not in (tmp_path / "second.log").read_text(), "nothing was resumed"


def test_shared_devices_see_each_others_changes(tmp_path: Path) -> None:
    path = tmp_path / "devices.db"
    a = SharedSimDriver(path)
    a.load(project(small_dc()))
    b = SharedSimDriver(path)
    from tropic.drivers.base import Step

    a.execute(Step(1, 0, "/storage/r1/san-1", "clone_image", {"image": "img-ubuntu", "volume": "vol-x"}))
    b.execute(Step(1, 1, "/storage/r1/san-1/vol-x", "export_volume", {}))
    a.execute(Step(1, 2, "/compute/r1/host-01", "import_volume", {"volume": "/storage/r1/san-1/vol-x"}))
    inv = b.inventory()
    assert inv["storage"]["/storage/r1/san-1"]["volumes"]["vol-x"]["exported"] is True
    assert "/storage/r1/san-1/vol-x" in inv["hosts"]["/compute/r1/host-01"]["volumes"]
    b.execute(Step(1, 2, "/compute/r1/host-01", "import_volume", {"volume": "/storage/r1/san-1/vol-x"}))
    assert a.duplicates() == []  # the repeat changed nothing: not an application
    a.close()
    b.close()


def test_queued_action_logs_outlive_log_compaction(zk_uri: str, tmp_path: Path) -> None:
    """Workers read a queued transaction's action log from the log entry that queued it: snapshots do
    not delete such an entry before the queue entry is gone."""
    devices = tmp_path / "devices.db"
    model = small_dc(hosts=4, memory_mib=10**6)
    sim = SharedSimDriver(devices)
    sim.load(project(model))
    client = open_client(zk_uri)
    executor = RemoteExecutor(client)
    store = ZooKeeperStore(zk_uri, client=client, physical_queue=True, snapshot_entries=2)
    c = Controller.open(store, sim, initial=lambda: model, executor=executor)
    executor.adopt(lambda txn: c.get(txn).settled)
    c.subscribe(executor.durable)
    c.start()
    setup = Setup(c, devices, zk_uri, client)
    stop = threading.Event()
    try:
        for i in range(12):  # no worker yet: started transactions wait on the queue
            c.submit(
                "spawn_vm", spawn("r1" if i % 2 else "r2", 1 + i % 4, f"g{i}", memory_mib=128), durable=True
            )
        store.wait_background()
        c.submit("stop_vm", {"vm": "/compute/r1/host-01/none"}, durable=True)  # switch to the snapshot
        store.wait_background()
        c.submit("stop_vm", {"vm": "/compute/r1/host-01/none"}, durable=True)  # and collect garbage
        store.wait_background()
        assert store.snapshots >= 2
        queued = client.get_children(Paths.QUEUE)
        assert queued and set(queued) <= set(client.get_children(Paths.WAL))
        _in_process_worker(setup, "late", stop)
        _assert_clean(setup)
    finally:
        stop.set()
        c.stop()
        client.stop()
        client.close()
        sim.close()


class _LostAnswer:
    """A multi's result whose answer was lost: ``get`` raises ConnectionLoss (the multi went through)."""

    def get(self, timeout: float | None = None) -> Any:
        raise ConnectionLoss("connection dropped (test)")


class _UnsureClient:
    """A worker's kazoo client whose first completing flush goes through but is answered by a lost
    connection, and whose report the leader has consumed (finalised and deleted) before the worker
    learns anything: the worker's resend must not fail for ever on what is already gone."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.lost = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transaction(self) -> Any:
        ops = self._client.transaction()
        if self.lost.is_set():
            return ops
        real_commit = ops.commit_async

        def commit_async() -> Any:
            root = self._client.chroot or ""
            paths = [getattr(op, "path", "")[len(root) :] for op in ops.operations]  # (ops hold full paths)
            if self.lost.is_set() or not any(p.startswith(f"{Paths.QUEUE}/") for p in paths):
                return real_commit()
            self.lost.set()
            real_commit().get(timeout=30)  # it went through ...
            for report in (p for p in paths if p.startswith(f"{Paths.DONE}/")):
                _until(lambda r=report: self._client.exists(r) is None, "the leader consuming the report")
            return _LostAnswer()  # ... but the worker is told the connection dropped

        ops.commit_async = commit_async
        return ops


def test_a_flush_that_went_through_unanswered_is_not_resent_for_ever(leader: Setup) -> None:
    stop = threading.Event()
    client = open_client(leader.uri)
    unsure = _UnsureClient(client)
    w = Worker(cast(KazooClient, unsure), SharedSimDriver(leader.devices), name="unsure", concurrency=8)
    runner = threading.Thread(target=w.run, args=(stop,), daemon=True)
    runner.start()
    try:
        c = leader.controller
        first = c.submit("spawn_vm", spawn("r1", 1, "u0", memory_mib=128))
        _until(unsure.lost.is_set, "a completing flush")
        later = [c.submit("spawn_vm", spawn("r1", 1 + i % 4, f"u{i}", memory_mib=128)) for i in range(1, 9)]
        _assert_clean(leader)
        assert all(t.state in FINAL for t in [first, *later])
    finally:
        stop.set()
        runner.join(60)
        client.stop()  # its claims end with its session
        client.close()
        if not leader.controller.drain(0):  # (failing) let a sound worker finish, or the teardown waits
            _in_process_worker(leader, "rescue", threading.Event())
