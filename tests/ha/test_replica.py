"""The replica wrapper as a process: serving, retries answered once, malformed input, its exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ha.harness import KV, ReplicaProc, serving, wait_for, wire
from tropic.ha.client import HAClient
from tropic.ha.log import RequestLog
from tropic.ha.program import Program, ProgramDied


@pytest.fixture
def trio(zk_uri: str, zk_client: Any, tmp_path: Path) -> Iterator[tuple[RequestLog, list[ReplicaProc]]]:
    job = f"kv-{uuid.uuid4().hex[:6]}"
    procs = [ReplicaProc(zk_uri, job, f"kv-{i}", KV, tmp_path).start() for i in range(3)]
    log = RequestLog(zk_client, job)
    try:
        wait_for(lambda: serving(log, [p.name for p in procs]), 120, "3 replicas serving")
        yield log, procs
    finally:
        for p in procs:
            if p.alive():
                p.terminate()


def test_a_retry_is_applied_once_and_answered_with_the_first_reply(
    trio: tuple[RequestLog, list[ReplicaProc]],
) -> None:
    log, _ = trio
    live = log.live()
    a, b = live["kv-0"].address, live["kv-1"].address
    request = {"client": "c1", "seq": 7, "op": {"op": "append", "key": "k", "value": "v7;"}}
    first = wire(a, request)[0]
    again = wire(b, request)[0]  # the client failed over and retried elsewhere
    assert first["ok"] and again["ok"] and first["reply"] == again["reply"] == {"value": "v7;"}
    stale = wire(b, {**request, "seq": 6})[0]
    assert not stale["ok"] and "stale" in stale["error"]
    read = wire(a, {"client": "c2", "seq": 1, "op": {"op": "get", "key": "k"}})[0]
    assert read["reply"] == {"value": "v7;"} and read["index"] > first["index"]


def test_malformed_requests_get_an_error_and_the_replicas_stay_in_agreement(
    trio: tuple[RequestLog, list[ReplicaProc]], zk_uri: str
) -> None:
    log, _ = trio
    address = log.live()["kv-2"].address
    garbage, no_seq, reserved = wire(
        address,
        b"this is not json\n",
        {"client": "c", "op": {"op": "get"}},
        {"client": "c", "seq": 1, "op": {"__tropic__": "restore", "state": {}}},
    )
    assert not garbage["ok"] and "malformed request" in garbage["error"]
    assert not no_seq["ok"] and "seq" in no_seq["error"]
    assert not reserved["ok"] and "reserved" in reserved["error"]
    with HAClient(zk_uri, log.job) as client:
        client.call({"op": "put", "key": "x", "value": 1})
        assert client.call({"op": "frobnicate", "key": "x"}) == {"error": "unknown op 'frobnicate'"}
        not_a_string = client.call({"op": "append", "key": "x", "value": "2"})
        assert not_a_string == {"error": "append needs a string value and key 'x' to hold a string"}
        last = client.call({"op": "get", "key": "x"})
        assert last == {"value": 1}
    wait_for(lambda: len({i.applied for i in log.live().values()}) == 1, 60, "the replicas at the same index")
    views = {n: wire(i.address, {"client": "r", "seq": 1, "op": {"op": "keys"}, "consistency": "local"})[0]
             for n, i in log.live().items()}  # fmt: skip
    assert all(v["reply"] == {"keys": ["x"]} for v in views.values()), views


def test_sigterm_stops_a_replica_cleanly_and_removes_its_node(
    trio: tuple[RequestLog, list[ReplicaProc]],
) -> None:
    log, procs = trio
    assert procs[1].terminate() == 0
    assert "kv-1" not in log.live()
    assert "stopping at index" in procs[1].stderr()


def test_a_program_that_exits_at_once_is_reported(zk_uri: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tropic.ha.replica", "--zk", zk_uri, "--job", "bad", "--replica", "bad-1",
         "--", sys.executable, "-c", "import sys; sys.exit(5)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert "exited with code 5" in run.stderr and "Traceback" not in run.stderr


def test_the_replica_dies_with_its_program(trio: tuple[RequestLog, list[ReplicaProc]]) -> None:
    _, procs = trio

    pid = procs[2].pid
    program_pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
    os.kill(program_pid, signal.SIGKILL)
    assert procs[2].proc is not None and procs[2].proc.wait(timeout=60) == 1
    assert "exited with code -9" in procs[2].stderr()


def test_help_explains_and_bad_arguments_are_refused() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tropic.ha.replica", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "stdin" in run.stdout and "--snapshot-every" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "tropic.ha.replica", "--zk", "zk://h:1/x", "--job", "j", "--replica", "r"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "no program given" in run.stderr and "Traceback" not in run.stderr


def test_a_client_of_a_job_without_replicas_gives_up_at_its_deadline(zk_uri: str) -> None:
    from tropic.ha.contract import HAUnavailable

    with HAClient(zk_uri, "nobody", timeout=1.0) as client, pytest.raises(HAUnavailable, match="no live"):
        client.call({"op": "get", "key": "k"})


def test_a_program_that_does_not_answer_is_reported_not_waited_for() -> None:
    silent = "import sys, time; sys.stdin.readline(); time.sleep(600)"
    prog = Program([sys.executable, "-c", silent])
    try:
        with pytest.raises(ProgramDied, match="did not answer within 1 s"):
            prog.probe(timeout=1.0)
    finally:
        prog.stop()
    assert prog.proc.poll() is not None
