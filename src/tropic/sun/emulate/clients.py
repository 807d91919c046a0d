"""Client processes of an emulated run: one real process per client region, issuing ZooKeeper reads and
writes (kazoo) through the delay proxy and timing each one.

The parent drives each process over a pipe, one step at a time: ``("prepare", member)`` opens (once) the
process's sessions to that member through its own proxy route, ``("run", member, read_rps, write_rps,
seconds)`` issues requests for ``seconds`` and answers the latencies measured (ms). Reads and writes use
two sessions, so that a read never waits behind a pending write (ZooKeeper orders a session's requests).
Each kind is paced as a closed loop at its rate: a request starts at its scheduled time, or at once when
the previous one ended late (no catch-up burst).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["ClientProcess", "StepSample"]

ROOT = "/tropic-sun-emulate"


@dataclass
class StepSample:
    """What one client region measured during one step."""

    reads_ms: list[float] = field(default_factory=list)
    writes_ms: list[float] = field(default_factory=list)
    errors: int = 0


def _paced(seconds: float, rps: float, request: Any, out: list[float], errors: list[int]) -> None:
    if rps <= 0:
        return
    start = time.perf_counter()
    end = start + seconds
    next_at = start
    while True:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        began = time.perf_counter()
        if began >= end:
            return
        try:
            request()
            out.append((time.perf_counter() - began) * 1000.0)
        except Exception:  # a request that fails is counted, never timed
            errors[0] += 1
        next_at = max(next_at + 1.0 / rps, time.perf_counter())


def _step(
    reader: Any, writer: Any, path: str, read_rps: float, write_rps: float, seconds: float
) -> StepSample:
    """Reads on ``reader``'s session and writes on ``writer``'s, concurrently, for ``seconds``."""
    sample = StepSample()
    errors = [0]
    payload = b"x" * 64

    def read() -> None:
        reader.get(path)

    def write() -> None:
        writer.set(path, payload)

    threads = [
        threading.Thread(target=_paced, args=(seconds, read_rps, read, sample.reads_ms, errors)),
        threading.Thread(target=_paced, args=(seconds, write_rps, write, sample.writes_ms, errors)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sample.errors = errors[0]
    return sample


def _serve(conn: Connection, name: str, ports: dict[int, int], timeout_s: float) -> None:
    from kazoo.client import KazooClient

    path = f"{ROOT}/{name}"
    sessions: dict[int, tuple[KazooClient, KazooClient]] = {}

    def session(member: int) -> tuple[KazooClient, KazooClient]:
        if member not in sessions:
            pair = []
            for _ in range(2):
                client = KazooClient(hosts=f"127.0.0.1:{ports[member]}", timeout=timeout_s)
                client.start(timeout=timeout_s)
                pair.append(client)
            pair[1].ensure_path(path)
            sessions[member] = (pair[0], pair[1])
        return sessions[member]

    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the parent is gone
                return
            if message[0] == "stop":
                return
            if message[0] == "prepare":
                try:
                    session(int(message[1]))
                    conn.send(("ready", None))
                except Exception as exc:  # reported to the parent, which names the region
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
                continue
            _, member, read_rps, write_rps, seconds = message
            reader, writer = session(int(member))
            sample = _step(reader, writer, path, float(read_rps), float(write_rps), float(seconds))
            conn.send(("done", sample))
    finally:
        for pair in sessions.values():
            for client in pair:
                with contextlib.suppress(Exception):
                    client.stop()
                    client.close()


class ClientProcess:
    """The parent's handle on one client region's process."""

    def __init__(self, name: str, ports: dict[int, int], *, timeout_s: float = 30.0) -> None:
        self.name = name
        ctx = multiprocessing.get_context("spawn")  # no fork of a parent running threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, name, dict(ports), timeout_s), name=f"sun-client-{name}", daemon=True
        )
        self._proc.start()
        child.close()
        self.timeout_s = timeout_s

    def prepare(self, member: int) -> None:
        self._conn.send(("prepare", member))

    def run(self, member: int, read_rps: float, write_rps: float, seconds: float) -> None:
        self._conn.send(("run", member, read_rps, write_rps, seconds))

    def answer(self, timeout_s: float) -> Any:
        """The process's answer to the last ``prepare`` or ``run``."""
        if not self._conn.poll(timeout_s):
            raise TimeoutError(f"client region {self.name}: no answer within {timeout_s:g} s")
        kind, value = self._conn.recv()
        if kind == "error":
            raise RuntimeError(f"client region {self.name}: {value}")
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("stop",))
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()
