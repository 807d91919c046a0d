"""What the HA tests share: replica processes of the example programs, a closed-loop load that records
its history, and waits on conditions (never on the clock)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kazoo.exceptions import NoNodeError

from tropic.ha.client import HAClient
from tropic.ha.contract import HAUnavailable, ReplicaInfo
from tropic.ha.log import RequestLog

REPO = Path(__file__).resolve().parents[2]
KV = REPO / "examples" / "ha" / "kv.py"
COUNTER = REPO / "examples" / "ha" / "counter.py"


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class ReplicaProc:
    """``python -m tropic.ha.replica ... -- python3 PROGRAM`` as a child process (stderr to a file)."""

    def __init__(
        self,
        zk_uri: str,
        job: str,
        name: str,
        program: Path,
        logdir: Path,
        *,
        snapshot_every: int = 50,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.stderr_path = logdir / f"{name}.stderr"
        self.argv = [
            sys.executable, "-m", "tropic.ha.replica", "--zk", zk_uri, "--job", job, "--replica", name,
            "--snapshot-every", str(snapshot_every), *extra, "--", sys.executable, str(program),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ReplicaProc:
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (a crash: no clean shutdown); the program dies with it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def serving(log: RequestLog, names: list[str]) -> dict[str, ReplicaInfo] | None:
    try:
        live = log.live()
    except NoNodeError:  # no replica has started yet
        return None
    ok = all(n in live and live[n].state == "serving" for n in names)
    return live if ok else None


@dataclass
class Op:
    client: str
    call: float
    ret: float
    op: dict[str, Any]
    reply: Any  # None when the call failed (its effect is unknown)
    ok: bool


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)


class Load:
    """``workers`` closed-loop clients (one HAClient each) running ``step(worker, i)`` -> op until stopped;
    every call is recorded in the history with its call and return times."""

    def __init__(
        self,
        zk_uri: str,
        job: str,
        workers: int,
        step: Callable[[int, int], dict[str, Any]],
        *,
        timeout: float = 60.0,
    ) -> None:
        self.history = History()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.done = [0] * workers
        self.clients = [HAClient(zk_uri, job, timeout=timeout) for _ in range(workers)]
        self.threads = [
            threading.Thread(target=self._run, args=(w, step), daemon=True) for w in range(workers)
        ]
        self.last_success = time.monotonic()
        self.gaps: list[float] = []

    def _run(self, worker: int, step: Callable[[int, int], dict[str, Any]]) -> None:
        client = self.clients[worker]
        i = 0
        while not self.stop.is_set():
            op = step(worker, i)
            start = time.monotonic()
            try:
                reply = client.call(op, read=op.get("op") == "get")  # gets are marked as reads
            except HAUnavailable as exc:
                self.history.record(Op(client.client_id, start, time.monotonic(), op, None, False))
                self.errors.append(str(exc))
                continue
            end = time.monotonic()
            self.history.record(Op(client.client_id, start, end, op, reply, True))
            with self.history.lock:
                self.gaps.append(end - max(self.last_success, start))
                self.last_success = max(self.last_success, end)
            self.done[worker] += 1
            i += 1

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def total(self) -> int:
        return sum(self.done)

    def wait_more(self, count: int, timeout: float = 120.0) -> None:
        target = self.total() + count
        wait_for(lambda: self.total() >= target, timeout, f"{count} more acknowledged requests")

    def finish(self) -> History:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        for c in self.clients:
            c.close()
        return self.history

    def max_gap(self) -> float:
        """The longest time a request waited with no other request succeeding meanwhile (approx.)."""
        return max(self.gaps, default=0.0)


def pids_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wire(address: str, *lines: dict[str, Any] | bytes, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Send raw lines to a replica's client wire; return its replies (one per line)."""
    import json
    import socket

    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        f = sock.makefile("rb")
        out = []
        for line in lines:
            sock.sendall(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n")
            out.append(json.loads(f.readline()))
        return out


def max_unavailability(history: History) -> float:
    """The longest window, within the load, with no successful request."""
    ends = sorted(o.ret for o in history.ops if o.ok)
    start = min((o.call for o in history.ops), default=0.0)
    points = [start, *ends]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)
