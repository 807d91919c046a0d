"""The bench's moving parts that need no cluster: a closed-loop load on a KV program through any
:class:`~tropic.ha.contract.Client`, the record of every request as its client saw it (the history the
linearizability checker reads), a kill scheduler, and the unreplicated baseline (the same program behind
a pipe)."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tropic.errors import TropicError
from tropic.ha.contract import Client, Consistency
from tropic.ha.linearizability import PENDING, Operation
from tropic.ha.metrics import TOKEN_END

__all__ = [
    "KVWire",
    "KillEvent",
    "KillScheduler",
    "KillTarget",
    "LoadGenerator",
    "PipeClient",
    "ProgramFailed",
    "Record",
    "history",
]

Kind = Literal["get", "append"]


class ProgramFailed(TropicError):
    """The unreplicated program died or answered something that is not one JSON line."""

    code = "ha_program_failed"


@dataclass(frozen=True, slots=True)
class KVWire:
    """How the KV example's requests and replies look on the program protocol: a get is
    ``{"op": "get", "key": k}`` answered ``{"value": v}`` (None when missing); an append is
    ``{"op": "append", "key": k, "value": v}``. ``examples/ha/kv.py`` keeps an appended key as the list
    of the values appended: read as their concatenation, it is the string the checker's KV model
    expects."""

    def request(self, kind: Kind, key: str, value: str | None) -> dict[str, Any]:
        if kind == "get":
            return {"op": "get", "key": key}
        return {"op": "append", "key": key, "value": value}

    def value(self, reply: Any) -> str | None:
        """A get's value from the program's reply (raises ValueError on an error reply)."""
        if isinstance(reply, dict):
            if "error" in reply:
                raise ValueError(f"the program answered an error: {reply['error']}")
            v = reply.get("value")
            if isinstance(v, list):  # the example keeps an appended key as the list of what was appended
                return "".join(str(x) for x in v)
            return None if v is None else str(v)
        return None if reply is None else str(reply)


@dataclass(frozen=True, slots=True)
class Record:
    """One request as its client saw it; times are seconds since the load started."""

    client: str
    kind: Kind
    key: str
    call: float
    ret: float | None  # None: no answer (the request may or may not have taken effect)
    value: str | None = None  # an append's token (with its end mark), or the value a get read
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.ret is not None


def history(records: Sequence[Record]) -> list[Operation]:
    """The records as the checker's operations (KV model inputs); failed reads are left out (they
    constrain nothing), failed appends stay, pending."""
    ops: list[Operation] = []
    for r in records:
        if r.kind == "get":
            if r.ok:
                ops.append(Operation(r.client, r.call, r.ret, {"op": "get", "key": r.key}, r.value))
        else:
            input = {"op": "append", "key": r.key, "value": r.value}
            ops.append(Operation(r.client, r.call, r.ret, input, None if r.ok else PENDING))
    return ops


class LoadGenerator:
    """``len(clients)`` threads, each issuing requests back to back on its own client (a closed loop):
    appends of a unique token or linearizable gets (marked ``read``), on keys drawn uniformly from
    ``keys``."""

    def __init__(
        self,
        clients: Sequence[tuple[str, Client]],
        *,
        keys: int = 50,
        write_ratio: float = 0.5,
        seed: int = 0,
        wire: KVWire | None = None,
        consistency: Consistency = "linearizable",
    ) -> None:
        if not clients:
            raise ValueError("the load needs at least one client")
        if keys < 1:
            raise ValueError("the load needs at least one key")
        self.clients = list(clients)
        self.keys = [f"k{i}" for i in range(keys)]
        self.write_ratio = write_ratio
        self.seed = seed
        self.wire = wire or KVWire()
        self.consistency: Consistency = consistency
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._records: list[list[Record]] = [[] for _ in self.clients]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.t0 = time.monotonic()
        for i, (name, client) in enumerate(self.clients):
            t = threading.Thread(
                target=self._run, args=(i, name, client), name=f"ha-load-{name}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop issuing; wait for the requests in flight (each ends by its client's deadline)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    @property
    def records(self) -> list[Record]:
        merged = [r for rs in self._records for r in rs]
        merged.sort(key=lambda r: r.call)
        return merged

    def _run(self, index: int, name: str, client: Client) -> None:
        rng = random.Random(f"{self.seed}-{name}")
        out = self._records[index]
        n = 0
        while not self._stop.is_set():
            key = rng.choice(self.keys)
            kind: Kind = "append" if rng.random() < self.write_ratio else "get"
            token = f"{name}.{n}{TOKEN_END}" if kind == "append" else None
            n += 1
            op = self.wire.request(kind, key, token)
            call = self.now()
            try:
                reply = client.call(op, consistency=self.consistency, read=kind == "get")
                value = token if kind == "append" else self.wire.value(reply)
                if kind == "append":
                    self.wire.value(reply)  # an error reply raises: the append did not happen
                out.append(Record(name, kind, key, call, self.now(), value))
            except (TropicError, OSError, ValueError) as e:
                out.append(Record(name, kind, key, call, None, token, error=str(e)))


# --- the kill scheduler -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KillEvent:
    at: float  # seconds since the load started
    victim: str  # the replica (or host) killed
    detail: dict[str, Any] = field(default_factory=dict)


class KillTarget(Protocol):
    """What the scheduler can kill: the live victims' names, and how to kill one (the detail returned
    goes to the report)."""

    def victims(self) -> list[str]: ...

    def kill(self, victim: str) -> dict[str, Any]: ...


class KillScheduler:
    """Every ``every`` seconds (the first after ``every``, none from ``until`` on), kill a random live
    victim of ``target``."""

    def __init__(
        self,
        target: KillTarget,
        every: float,
        *,
        clock: Callable[[], float],
        seed: int = 0,
        on_kill: Callable[[KillEvent], None] | None = None,
        until: float | None = None,
    ) -> None:
        if every <= 0:
            raise ValueError("the kill interval must be positive")
        self.target = target
        self.every = every
        self.clock = clock
        self.rng = random.Random(seed)
        self.on_kill = on_kill
        self.until = until  # no kill at or after this time (the end of the load)
        self.events: list[KillEvent] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-kill", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        next_at = self.clock() + self.every
        while not self._stop.wait(max(0.0, next_at - self.clock())):
            if self.until is not None and next_at >= self.until:
                return
            next_at += self.every
            try:
                victims = self.target.victims()
                if not victims:
                    self.errors.append(f"at {self.clock():.1f} s: no live victim to kill")
                    continue
                victim = self.rng.choice(sorted(victims))
                at = self.clock()
                detail = self.target.kill(victim)
                event = KillEvent(at, victim, detail)
                self.events.append(event)
                if self.on_kill is not None:
                    self.on_kill(event)
            except (TropicError, OSError) as e:
                self.errors.append(f"at {self.clock():.1f} s: {e}")


# --- the unreplicated baseline ----------------------------------------------------------------------
class PipeClient:
    """The program alone: one process, requests written to its stdin and replies read from its stdout,
    one at a time (it is sequential). Offers :class:`~tropic.ha.contract.Client`, so the same load runs
    against it and against the replicated job."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError as e:
            raise ProgramFailed(f"cannot start {' '.join(self.argv)}: {e}") from e
        self._lock = threading.Lock()

    def call(
        self, op: dict[str, Any], *, consistency: Consistency = "linearizable", read: bool = False
    ) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            try:
                self.proc.stdin.write(json.dumps(op) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except OSError as e:
                raise ProgramFailed(f"{self.argv[0]}: {e}") from e
            if not line:
                raise ProgramFailed(f"{' '.join(self.argv)} exited (status {self.proc.poll()})")
            try:
                return json.loads(line)
            except json.JSONDecodeError as e:
                raise ProgramFailed(f"{' '.join(self.argv)} answered {line!r}, not JSON") from e

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
