"""Kill tests on the real ensemble: a replica process SIGKILLed mid-load (kv with snapshots, and the
counter that has none), and one ZooKeeper server of three killed mid-load. Each run checks that every
acknowledged write reads back, that no retried request was applied twice, that the whole history is
linearizable, and that the replicas agree; it prints the longest window without a successful request."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ha.harness import (
    COUNTER,
    KV,
    History,
    Load,
    Op,
    ReplicaProc,
    max_unavailability,
    serving,
    wait_for,
    wire,
)
from ha.linear import CounterReplyModel, KVStringModel, linearizable, tokens
from tropic.ha.client import HAClient
from tropic.ha.log import RequestLog

KEYS = [f"k{i}" for i in range(4)]
WORKERS = 4
SNAPSHOT_EVERY = 25


def kv_step_op(worker: int, i: int) -> dict[str, Any]:
    key = KEYS[(worker + i) % len(KEYS)]
    if i % 3 == 2:
        return {"op": "get", "key": key}
    return {"op": "append", "key": key, "value": f"w{worker}-{i};"}


class Job:
    def __init__(
        self, zk_uri: str, zk_client: Any, tmp_path: Path, program: Path, read_path: str = "log"
    ) -> None:
        self.zk_uri = zk_uri
        self.read_path = read_path
        self.name = f"{program.stem}-{uuid.uuid4().hex[:6]}"
        self.program = program
        self.tmp_path = tmp_path
        self.log = RequestLog(zk_client, self.name)
        self.procs = {f"r{i}": self.start(f"r{i}") for i in range(3)}
        wait_for(lambda: serving(self.log, list(self.procs)), 120, "3 replicas serving")

    def start(self, name: str) -> ReplicaProc:
        proc = ReplicaProc(
            self.zk_uri, self.name, name, self.program, self.tmp_path, snapshot_every=SNAPSHOT_EVERY,
            extra=("--read-path", self.read_path),
        )  # fmt: skip
        return proc.start()

    def restart(self, name: str) -> ReplicaProc:
        proc = self.procs[name] = self.start(name)

        def up() -> bool:
            info = self.log.live().get(name)
            return info is not None and info.pid == proc.pid and info.state == "serving"

        wait_for(up, 120, f"the restarted {name} serving")
        return proc

    def agree(self) -> dict[str, Any]:
        """Once every replica has applied the same index, their local states are equal."""
        wait_for(
            lambda: len({i.applied for i in self.log.live().values()}) == 1, 120, "replicas at one index"
        )
        key_op = {"op": "keys"} if self.program == KV else {"op": "get", "name": "n"}
        views = {
            n: wire(i.address, {"client": "check", "seq": 1, "op": key_op, "consistency": "local"})[0][
                "reply"
            ]
            for n, i in self.log.live().items()
        }
        assert len(views) == 3 and len({repr(v) for v in views.values()}) == 1, views
        return views

    def stop(self) -> None:
        for p in self.procs.values():
            if p.alive():
                p.terminate()


@pytest.fixture
def kv_job(request: Any, zk_uri: str, zk_client: Any, tmp_path: Path) -> Iterator[Job]:
    """The kv job; ``indirect`` parametrisation chooses its replicas' read path (default: log)."""
    job = Job(zk_uri, zk_client, tmp_path, KV, getattr(request, "param", "log"))
    yield job
    job.stop()


@pytest.fixture
def counter_job(zk_uri: str, zk_client: Any, tmp_path: Path) -> Iterator[Job]:
    job = Job(zk_uri, zk_client, tmp_path, COUNTER)
    yield job
    job.stop()


def check_kv(job: Job, history: History) -> None:
    """Every acknowledged append reads back exactly once; none is there twice; the history (with the
    final reads) is linearizable; the replicas agree."""
    final: dict[str, list[str]] = {}
    with HAClient(job.zk_uri, job.name) as client:
        for key in KEYS:
            op = {"op": "get", "key": key}
            start = time.monotonic()
            reply = client.call(op, read=True)
            history.record(Op(client.client_id, start, time.monotonic(), op, reply, True))
            final[key] = tokens(reply["value"])
    counts = Counter(v for values in final.values() for v in values)
    assert all(n == 1 for n in counts.values()), f"applied twice: {[v for v, n in counts.items() if n > 1]}"
    acked = [o for o in history.ops if o.ok and o.op["op"] == "append"]
    lost = [o.op["value"] for o in acked if o.op["value"].rstrip(";") not in final[o.op["key"]]]
    assert lost == [], f"acknowledged writes lost: {lost}"
    assert linearizable(history.ops, KVStringModel()), "the history is not linearizable"
    job.agree()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kv_job", ["log", "sync"], indirect=True)
def test_a_replica_killed_mid_load_loses_nothing_and_catches_up_from_a_snapshot(kv_job: Job) -> None:
    load = Load(kv_job.zk_uri, kv_job.name, WORKERS, kv_step_op).start()
    try:
        load.wait_more(80)
        victim = "r0"  # every client prefers it (first by name): the kill hits all of them
        kv_job.procs[victim].kill()
        killed_at = time.monotonic()
        load.wait_more(80)
        wait_for(lambda: kv_job.log.truncated() > 0, 60, "the log truncated behind the snapshots")
        restarted = kv_job.restart(victim)
        assert "restored the snapshot at index" in restarted.stderr()
        load.wait_more(80)
    finally:
        history = load.finish()
    assert load.errors == []
    gap = max_unavailability(history)
    check_kv(kv_job, history)
    size, last = kv_job.log.size(), max(kv_job.log.indices())
    assert size <= 4 * SNAPSHOT_EVERY + 2 * WORKERS < last, (size, last)  # bounded, and truncation happened
    print(f"\nHA replica kill ({kv_job.read_path} reads): {len(history.ops)} ops, "
          f"max unavailability {gap * 1000:.0f} ms, "
          f"failovers {sum(c.failovers for c in load.clients)}, log {size} entries of {last + 1}, "
          f"killed {time.monotonic() - killed_at:.1f} s before the end")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_counter_without_snapshots_survives_a_replica_kill_with_its_log_whole(counter_job: Job) -> None:
    def step(worker: int, i: int) -> dict[str, Any]:
        return {"op": "get", "name": "n"} if i % 4 == 3 else {"op": "incr", "name": "n", "by": 1}

    load = Load(counter_job.zk_uri, counter_job.name, WORKERS, step).start()
    try:
        load.wait_more(60)
        counter_job.procs["r0"].kill()
        load.wait_more(60)
        restarted = counter_job.restart("r0")
        assert "no snapshot: applying the log from index 0" in restarted.stderr()
        load.wait_more(40)
    finally:
        history = load.finish()
    assert load.errors == []
    gap = max_unavailability(history)
    with HAClient(counter_job.zk_uri, counter_job.name) as client:
        start = time.monotonic()
        value = client.call({"op": "get", "name": "n"})
        history.record(Op(client.client_id, start, time.monotonic(), {"op": "get", "name": "n"}, value, True))
    incrs = [o for o in history.ops if o.op["op"] == "incr"]
    acked = [o.reply["value"] for o in incrs if o.ok]
    assert len(set(acked)) == len(acked), "two increments got the same answer"
    assert len(acked) <= value["value"] <= len(incrs), "an increment was lost or applied twice"
    assert linearizable(history.ops, CounterReplyModel()), "the history is not linearizable"
    assert counter_job.log.truncated() == 0 and counter_job.log.size() == len(counter_job.log.indices())
    assert counter_job.log.size() >= len(acked)  # the whole log is kept: the program takes no snapshots
    counter_job.agree()
    print(f"\nHA counter replica kill: {len(history.ops)} ops, max unavailability {gap * 1000:.0f} ms")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kv_job", ["log", "sync"], indirect=True)
def test_a_zookeeper_server_killed_mid_load_loses_nothing(zk_ensemble: Any, kv_job: Job) -> None:
    load = Load(kv_job.zk_uri, kv_job.name, WORKERS, kv_step_op).start()
    try:
        load.wait_more(60)
        leader = zk_ensemble.leader()
        zk_ensemble.kill(leader if leader is not None else 0)
        load.wait_more(100)
    finally:
        history = load.finish()
    assert load.errors == []
    gap = max_unavailability(history)
    check_kv(kv_job, history)
    print(f"\nHA ZooKeeper leader kill ({kv_job.read_path} reads): {len(history.ops)} ops, "
          f"max unavailability {gap * 1000:.0f} ms")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_truncation_waits_for_a_stalled_live_replica(kv_job: Job) -> None:
    """A live replica that stops applying (SIGSTOP, its session kept alive by a long timeout) holds the
    truncation at its own snapshot; resumed, it finds every entry it needs and catches up."""
    assert kv_job.procs["r2"].terminate() == 0
    stalled = kv_job.procs["r2"] = ReplicaProc(
        kv_job.zk_uri, kv_job.name, "r2", KV, kv_job.tmp_path, snapshot_every=SNAPSHOT_EVERY,
        extra=("--session-timeout", "10"),
    ).start()  # fmt: skip

    def up() -> bool:
        info = kv_job.log.live().get("r2")
        return info is not None and info.pid == stalled.pid and info.state == "serving"

    wait_for(up, 60, "the new r2 serving")
    with HAClient(kv_job.zk_uri, kv_job.name) as client:
        for i in range(30):
            client.call({"op": "append", "key": "s", "value": f"before-{i};"})
        wait_for(lambda: kv_job.log.snapshot_applied("r2") is not None, 60, "a snapshot of r2")
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            held = kv_job.log.snapshot_applied("r2")
            assert held is not None
            for i in range(4 * SNAPSHOT_EVERY):
                client.call({"op": "append", "key": "s", "value": f"during-{i};"})
            assert "r2" in kv_job.log.live(), "the stalled replica's session is still alive"

            def others_ahead() -> bool:  # so that, but for r2, the log would be truncated further
                return min(kv_job.log.snapshot_applied(n) or -1 for n in ("r0", "r1")) > held + SNAPSHOT_EVERY

            wait_for(others_ahead, 60, "the other replicas' snapshots")
            assert kv_job.log.truncated() <= held + 1, "truncation passed a live replica's snapshot"
            assert min(kv_job.log.indices()) <= held + 1
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        for i in range(30):
            client.call({"op": "append", "key": "s", "value": f"after-{i};"})
        values = tokens(client.call({"op": "get", "key": "s"})["value"])
    assert len(values) == 30 + 4 * SNAPSHOT_EVERY + 30 == len(set(values))
    kv_job.agree()
    assert "restored" not in stalled.stderr() and "truncated" not in stalled.stderr()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_replica_whose_session_expired_while_truncation_passed_it_restores_and_agrees(kv_job: Job) -> None:
    """SIGSTOP a replica past its ZooKeeper session: its node goes, the others truncate past its snapshot;
    resumed, it registers again, sees from the marker that entries it needs are gone, restores a newer
    snapshot instead of skipping them, and ends in agreement."""
    frozen = kv_job.procs["r2"]
    with HAClient(kv_job.zk_uri, kv_job.name) as client:
        for i in range(10):
            client.call({"op": "append", "key": "e", "value": f"before-{i};"})
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: "r2" not in kv_job.log.live(), 60, "r2's session to expire")
            held = kv_job.log.snapshot_applied("r2")
            n = 0
            while kv_job.log.truncated() <= (held if held is not None else -1) + 1:
                client.call({"op": "append", "key": "e", "value": f"during-{n};"})
                n += 1
                assert n < 2000, "truncation never passed the expired replica"
        finally:
            os.kill(frozen.pid, signal.SIGCONT)

        def back() -> bool:
            info = kv_job.log.live().get("r2")
            return info is not None and info.pid == frozen.pid and info.state == "serving"

        wait_for(back, 120, "r2 registered again")
        for i in range(10):
            client.call({"op": "append", "key": "e", "value": f"after-{i};"})
        values = tokens(client.call({"op": "get", "key": "e"})["value"])
    assert len(values) == 20 + n == len(set(values))
    kv_job.agree()
    assert "registering again" in frozen.stderr()
    assert "restored the snapshot" in frozen.stderr() or "restoring a newer snapshot" in frozen.stderr()


@pytest.mark.timeout(600)
def test_a_replica_restarts_from_a_snapshot_over_the_node_limit(zk_client: Any, kv_job: Job) -> None:
    """A program state over ZooKeeper's 1 MB node limit is snapshotted in chunks and restored from them."""
    kv_job.procs["r0"].kill()
    wait_for(lambda: "r0" not in kv_job.log.live(), 60, "r0's session to end")  # else it holds truncation
    blob = "x" * 200_000
    with HAClient(kv_job.zk_uri, kv_job.name) as client:
        for i in range(2 * SNAPSHOT_EVERY):
            client.call({"op": "put", "key": f"big-{i % 8}", "value": f"{i}:{blob}"})
        wait_for(lambda: kv_job.log.truncated() > 0, 60, "a truncation")
        chunked = [n for n in ("r1", "r2") if zk_client.get_children(f"{kv_job.log.snapshots_path}/{n}")]
        assert chunked, "the ~1.6 MB state was snapshotted in chunks"
        restarted = kv_job.restart("r0")
        assert "restored the snapshot" in restarted.stderr()
        local = {"client": "check", "seq": 1, "op": {"op": "get", "key": "big-7"}, "consistency": "local"}
        info = kv_job.log.live()["r0"]
        wait_for(lambda: wire(info.address, local)[0]["reply"]["value"] is not None, 60, "r0 has big-7")
    kv_job.agree()
