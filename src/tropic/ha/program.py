"""The unmodified program a replica runs: a child process fed one JSON request per line on stdin, that
answers one JSON line per request on stdout (the protocol is in :mod:`tropic.ha.contract`).

The child dies with the wrapper (``PR_SET_PDEATHSIG`` on Linux), so killing a replica kills its program;
the wrapper dies with the child, since it cannot serve without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import select
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from tropic.errors import TropicError

__all__ = ["Program", "ProgramDied"]

_PR_SET_PDEATHSIG = 1


class ProgramDied(TropicError):
    """The program exited (or closed its stdout): the replica cannot go on."""

    code = "ha_program_died"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Program:
    """A started program; :meth:`ask` is serialised (one request in flight, answers in order)."""

    def __init__(self, argv: list[str]) -> None:
        if not argv:
            raise TropicError("no program given: pass it after '--'")
        self.argv = list(argv)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # the program's diagnostics go where the wrapper's go
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ProgramDied(f"cannot start program {self.argv[0]!r}: {exc.strerror or exc}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._stdout: IO[bytes] = self.proc.stdout
        self._lock = threading.Lock()
        self.supports_snapshots = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _died(self) -> ProgramDied:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return ProgramDied(f"program {self.argv[0]!r} closed its stdout")
        return ProgramDied(f"program {self.argv[0]!r} exited with code {code}")

    def ask(self, request: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Send one request and return the program's answer. Output that is not JSON is answered as an
        ``{"error": ...}`` (a deterministic program gives the same on every replica). ``timeout`` (only
        for a first request: nothing may be buffered yet) bounds the wait for the answer."""
        line = json.dumps(request, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        with self._lock:
            try:
                self._stdin.write(line)
                self._stdin.flush()
                if timeout is not None and not select.select([self._stdout], [], [], timeout)[0]:
                    raise ProgramDied(
                        f"program {self.argv[0]!r} did not answer within {timeout:g} s (does it read one "
                        "JSON request per line on stdin and write one JSON line per request on stdout, "
                        "flushing each?)"
                    )
                answer = self._stdout.readline()
            except (BrokenPipeError, ConnectionResetError, ValueError):
                raise self._died() from None
        if not answer:
            raise self._died()
        try:
            return json.loads(answer)
        except ValueError:
            text = answer.decode(errors="replace").strip()[:200]
            return {"error": f"the program's answer is not JSON: {text!r}"}

    def probe(self, timeout: float = 30.0) -> bool:
        """Ask for a snapshot of the fresh program: it supports snapshots when it answers ``{"state": ...}``
        (anything else, an error included, means it runs with its log kept whole)."""
        answer = self.ask({"__tropic__": "snapshot"}, timeout=timeout)
        self.supports_snapshots = isinstance(answer, dict) and "state" in answer and "error" not in answer
        return self.supports_snapshots

    def snapshot(self) -> Any:
        answer = self.ask({"__tropic__": "snapshot"})
        if not (isinstance(answer, dict) and "state" in answer):
            raise TropicError(f"program {self.argv[0]!r} did not answer the snapshot request: {answer!r}")
        return answer["state"]

    def restore(self, state: Any) -> None:
        answer = self.ask({"__tropic__": "restore", "state": state})
        if not (isinstance(answer, dict) and answer.get("ok") is True):
            raise TropicError(f"program {self.argv[0]!r} refused to restore a snapshot: {answer!r}")

    def wait(self) -> int:
        return self.proc.wait()

    def stop(self, timeout: float = 3.0) -> None:
        """Close its stdin, then terminate (and at last kill) it."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.proc.wait(timeout=timeout / 2)
            return
        except subprocess.TimeoutExpired:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout / 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
