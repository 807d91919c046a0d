"""The harness must never leave a ZooKeeper server running, even when the Python that started it dies."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zkharness import ZooKeeperEnsemble

TESTS = Path(__file__).resolve().parent.parent
# Starts a one-server ensemble, prints the server's pid and directory, then ends as the test says.
CHILD = """
import os, sys, time
sys.path.insert(0, {tests!r})
from zkharness import ZooKeeperEnsemble
ensemble = ZooKeeperEnsemble(size=1, heap_mb=64)
ensemble.start(0)
print(ensemble.pid(0), ensemble.base_dir, flush=True)
sys.stdin.readline()  # the test has seen the server alive
if sys.argv[1] == "exit":
    sys.exit(0)  # no stop_all(): the atexit hook must kill the server
time.sleep(120)  # waits to be killed by the test
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by init counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_no_server_outlives_its_python(zk_ensemble: ZooKeeperEnsemble, ending: str) -> None:
    # zk_ensemble only for its skip when ZooKeeper is missing; the child makes its own ensemble.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS)), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        pid_text, base_dir = child.stdout.readline().split(maxsplit=1)
        server_pid = int(pid_text)
        assert _alive(server_pid)
        if ending == "sigkill":
            os.kill(child.pid, signal.SIGKILL)
        else:
            child.stdin.write("go\n")
            child.stdin.flush()
        child.wait(timeout=30)
        assert _wait_gone(server_pid), f"ZooKeeper server {server_pid} outlived its parent ({ending})"
        if ending == "exit":
            assert not Path(base_dir.strip()).exists()  # atexit also removed the temporary directory
        else:
            shutil.rmtree(base_dir.strip(), ignore_errors=True)  # nobody was left to do it
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_kill_and_start_one_server() -> None:
    ensemble = ZooKeeperEnsemble(size=1, heap_mb=64)
    try:
        ensemble.start(0, wait=True, timeout=60)
        assert ensemble.mode(0) == "leader"  # a one-member quorum
        pid = ensemble.pid(0)
        assert pid is not None
        ensemble.kill(0)
        assert not ensemble.running(0)
        assert ensemble.mode(0) is None
        assert _wait_gone(pid)
        ensemble.start(0, wait=True, timeout=60)
        assert ensemble.pid(0) != pid
    finally:
        ensemble.close()
    assert not ensemble.base_dir.exists()
    assert list(ensemble.processes()) == []
