"""A linearizability checker: the Wing-Gong search with Lowe's memoisation, as in porcupine.

A history is a list of :class:`Operation` (who called, when it was called and when it returned, what it
asked and what it got). It is linearizable when every operation can be given a point between its call and
its return so that the operations, in the order of those points, are a legal sequential run of the
model. An operation that never returned (the client timed out: it does not know whether the request took
effect) has ``return_time = None``, read as infinity, and output :data:`PENDING`: it may take effect at
any point after its call, or never (a point after every other operation is the same as never).

The search (Wing and Gong 1993, with Lowe's 2017 cache, as porcupine does it): the call and return
events, sorted by time (calls before returns at equal times, so such operations count as concurrent),
form a doubly linked list. Walking it, the search tries to linearize a call whose return has not been
passed (the operation is *minimal*): if the model accepts it, the operation is lifted out of the list
(call and return), pushed on a stack with the state before it, and the walk restarts at the head. Meeting
a return means that the operation must already have been linearized: the search backtracks (pops the
stack, puts the operation back, tries the next candidate). The cache holds every (set of linearized
operations, state) reached: reaching one again cannot lead anywhere new, so the branch is cut. The
history is split first by the model's ``partition`` (per key for a KV store: linearizability is local,
Herlihy and Wing), which keeps each search small.

Searches are exponential in the worst case: :func:`check` takes a time budget and answers
:attr:`CheckResult.UNKNOWN` when it runs out, rather than hanging.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

__all__ = [
    "PENDING",
    "CheckOutcome",
    "CheckResult",
    "CounterModel",
    "KVModel",
    "Model",
    "Operation",
    "QueueModel",
    "check",
]

S = TypeVar("S", bound=Hashable)


class _Pending:
    """The output of an operation that never returned: any output is consistent with it."""

    _instance: _Pending | None = None

    def __new__(cls) -> _Pending:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = _Pending()


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request as the client saw it. ``return_time`` None: it never returned (timed out)."""

    client: str
    call_time: float
    return_time: float | None
    input: Any
    output: Any = PENDING

    @property
    def pending(self) -> bool:
        return self.return_time is None


class CheckResult(Enum):
    OK = "ok"  # linearizable
    ILLEGAL = "illegal"  # not linearizable (some partition has no linearization)
    UNKNOWN = "unknown"  # the time budget ran out before an answer (no partition found illegal)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    result: CheckResult
    partitions: int  # how many sub-histories were searched
    operations: int  # how many operations were checked (pending reads are dropped: they constrain nothing)
    illegal_partition: int | None = None  # the index of the first partition found illegal
    elapsed_s: float = 0.0

    @property
    def linearizable(self) -> bool | None:
        """True, False, or None when unknown."""
        if self.result is CheckResult.UNKNOWN:
            return None
        return self.result is CheckResult.OK


class Model(ABC, Generic[S]):
    """A sequential specification. States must be hashable and compare equal when equivalent (the
    search's cache relies on it). ``step`` gets :data:`PENDING` as the output of an operation that never
    returned and must then accept any output the operation could have had."""

    @abstractmethod
    def init(self) -> S: ...

    @abstractmethod
    def step(self, state: S, input: Any, output: Any) -> tuple[bool, S]:
        """Whether ``input`` may return ``output`` in ``state``, and the state after it."""

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        """Independent sub-histories (each checked alone); by default the whole history."""
        return [list(history)]

    def read_only(self, input: Any) -> bool:
        """Whether the operation never changes the state (a pending read is then dropped)."""
        return False


# --- models -----------------------------------------------------------------------------------------
# A value's fingerprint: its UTF-8 length and its bytes read as a number modulo the Mersenne prime
# 2**127 - 1. An append's fingerprint follows from the old one and the suffix alone, so the search's
# cache holds no copies of long values (a bench's keys grow to many kilobytes). Two different values of
# the same length share a fingerprint only if their difference is a multiple of that prime.
Fingerprint = tuple[int, int]
_PRIME = 2**127 - 1
_MISSING: Fingerprint = (-1, 0)
KVState = tuple[tuple[str, Fingerprint], ...]  # sorted (key, fingerprint) pairs; a missing key has none


def fingerprint(value: str | None) -> Fingerprint:
    if value is None:
        return _MISSING
    data = value.encode()
    return len(data), int.from_bytes(data, "big") % _PRIME


def _appended(old: Fingerprint, suffix: str) -> Fingerprint:
    n, h = (0, 0) if old == _MISSING else old
    add_n, add_h = fingerprint(suffix)
    return n + add_n, (h * pow(256, add_n, _PRIME) + add_h) % _PRIME


def _kv_get(state: KVState, key: str) -> Fingerprint:
    for k, v in state:
        if k == key:
            return v
    return _MISSING


def _kv_set(state: KVState, key: str, value: Fingerprint) -> KVState:
    if len(state) == 1 and state[0][0] == key:  # the usual case: one partition, one key
        return ((key, value),)
    return tuple(sorted([*((k, v) for k, v in state if k != key), (key, value)]))


class KVModel(Model[KVState]):
    """A key-value store of strings. Inputs ``{"op": "get"|"put"|"append", "key": k, "value": v}``;
    outputs: a get returns the value (None when the key is missing), a put or an append returns None
    (its output is not checked). Partitioned per key. Values are compared by :func:`fingerprint`."""

    def __init__(self) -> None:
        self._prints: dict[str | None, Fingerprint] = {}

    def _print(self, value: str | None) -> Fingerprint:
        fp = self._prints.get(value)
        if fp is None:
            if len(self._prints) > 100_000:
                self._prints.clear()
            fp = self._prints[value] = fingerprint(value)
        return fp

    def init(self) -> KVState:
        return ()

    def step(self, state: KVState, input: Any, output: Any) -> tuple[bool, KVState]:
        op, key = input["op"], str(input["key"])
        if op == "get":
            if output is PENDING:
                return True, state
            return self._print(None if output is None else str(output)) == _kv_get(state, key), state
        if op == "put":
            return True, _kv_set(state, key, self._print(str(input["value"])))
        if op == "append":
            return True, _kv_set(state, key, _appended(_kv_get(state, key), str(input["value"])))
        raise ValueError(f"unknown KV operation {op!r}")

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        """Per key, without the pending writes no read observed (what they wrote is in no read's
        value). Such a write may as well be linearized after every other operation on its key (it never
        returned): the values that change are those from it to the next put, which no read saw; so
        dropping it changes no verdict. Kept, each would double the search at every read it might
        precede (a bench with many timeouts would never finish)."""
        by_key: dict[str, list[Operation]] = {}
        for op in history:
            by_key.setdefault(str(op.input["key"]), []).append(op)
        return [self._observed(ops) for ops in by_key.values()]

    @staticmethod
    def _observed(ops: list[Operation]) -> list[Operation]:
        seen = {
            str(op.output)
            for op in ops
            if not op.pending and op.input["op"] == "get" and op.output is not None
        }
        # A substring of a read is a substring of a longest read it is a prefix of: keep only those
        # (one, usually: a key that is only appended to reads as one growing value).
        longest: list[str] = []
        for out in sorted(seen, key=len, reverse=True):
            if not any(m.startswith(out) for m in longest):
                longest.append(out)

        def observed(op: Operation) -> bool:
            # After a put or an append, the value holds what it wrote until the next put: a read in
            # between holds it too. Without such a read, what it wrote was never seen.
            value = str(op.input.get("value", ""))
            return any(value in out for out in longest)

        return [op for op in ops if not op.pending or op.input["op"] == "get" or observed(op)]

    def read_only(self, input: Any) -> bool:
        return bool(input["op"] == "get")


class CounterModel(Model[int]):
    """A counter. Inputs ``{"op": "incr", "by": n}`` (returns the new value) and ``{"op": "get"}``."""

    def init(self) -> int:
        return 0

    def step(self, state: int, input: Any, output: Any) -> tuple[bool, int]:
        op = input["op"]
        if op == "get":
            return (output is PENDING or output == state), state
        if op == "incr":
            new = state + int(input.get("by", 1))
            return (output is PENDING or output == new), new
        raise ValueError(f"unknown counter operation {op!r}")

    def read_only(self, input: Any) -> bool:
        return bool(input["op"] == "get")


class QueueModel(Model[tuple[Any, ...]]):
    """A FIFO queue. Inputs ``{"op": "enqueue", "value": v}`` (output not checked) and
    ``{"op": "dequeue"}`` (returns the head, None when empty). Values must be hashable (JSON scalars)."""

    def init(self) -> tuple[Any, ...]:
        return ()

    def step(self, state: tuple[Any, ...], input: Any, output: Any) -> tuple[bool, tuple[Any, ...]]:
        op = input["op"]
        if op == "enqueue":
            return True, (*state, input["value"])
        if op == "dequeue":
            head = state[0] if state else None
            if output is not PENDING and output != head:
                return False, state
            return True, state[1:]
        raise ValueError(f"unknown queue operation {op!r}")


# --- the search -------------------------------------------------------------------------------------
class _Node:
    """An event in the doubly linked list: a call (``match`` is its return) or a return (``match`` None)."""

    __slots__ = ("id", "match", "next", "prev", "value")

    def __init__(self, value: Any, match: _Node | None, id: int) -> None:
        self.value = value
        self.match = match
        self.id = id
        self.next: _Node | None = None
        self.prev: _Node | None = None


def _linked_events(ops: Sequence[Operation]) -> _Node:
    """The head sentinel of the list of call and return events in time order (calls first at equal
    times, so that operations that touch are concurrent); a pending operation returns at infinity."""
    events: list[tuple[float, int, int]] = []  # (time, 0 call | 1 return, op id)
    for i, op in enumerate(ops):
        events.append((op.call_time, 0, i))
        events.append((math.inf if op.return_time is None else op.return_time, 1, i))
    events.sort()
    head = _Node(None, None, -1)
    calls: dict[int, _Node] = {}
    tail = head
    for _, kind, i in events:
        if kind == 0:
            node = _Node(ops[i].input, None, i)
            calls[i] = node
        else:
            node = _Node(ops[i].output, None, i)
            calls[i].match = node  # the call comes first, so it is there
        tail.next = node
        node.prev = tail
        tail = node
    return head


def _lift(call: _Node) -> None:
    assert call.prev is not None and call.next is not None and call.match is not None
    call.prev.next = call.next
    call.next.prev = call.prev
    ret = call.match
    assert ret.prev is not None
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(call: _Node) -> None:
    ret = call.match
    assert ret is not None and ret.prev is not None and call.prev is not None and call.next is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    call.prev.next = call
    call.next.prev = call


class _OutOfTime(Exception):
    pass


_CLOCK_EVERY = 1024  # search steps between two looks at the clock


def _check_single(model: Model[S], ops: Sequence[Operation], deadline: float) -> bool:
    head = _linked_events(ops)
    entry = head.next
    state = model.init()
    linearized = 0  # bitset of linearized operation ids
    seen: set[tuple[int, S]] = set()
    stack: list[tuple[_Node, S]] = []
    steps = 0
    while head.next is not None:
        steps += 1
        if steps % _CLOCK_EVERY == 0 and time.monotonic() > deadline:
            raise _OutOfTime
        assert entry is not None  # the list ends with a return, where the walk turns back
        if entry.match is not None:  # a call whose return is still in the list: a candidate
            ok, new_state = model.step(state, entry.value, entry.match.value)
            if ok:
                key = (linearized | (1 << entry.id), new_state)
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = key[0]
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:  # a return: that operation had to be linearized before here; backtrack
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.id)
            _unlift(entry)
            entry = entry.next
    return True


def check(model: Model[Any], history: Sequence[Operation], *, timeout_s: float | None = None) -> CheckOutcome:
    """Whether ``history`` is linearizable with respect to ``model``: OK, ILLEGAL, or UNKNOWN when
    ``timeout_s`` ran out first (ILLEGAL still wins if some partition was found illegal in time)."""
    start = time.monotonic()
    deadline = math.inf if timeout_s is None else start + timeout_s
    kept = [op for op in history if not (op.pending and model.read_only(op.input))]
    partitions = [p for p in model.partition(kept) if p]
    timed_out = False
    for index, sub in enumerate(partitions):
        try:
            ok = _check_single(model, sub, deadline)
        except _OutOfTime:
            timed_out = True
            break
        if not ok:
            return CheckOutcome(
                CheckResult.ILLEGAL, len(partitions), len(kept), index, time.monotonic() - start
            )
    result = CheckResult.UNKNOWN if timed_out else CheckResult.OK
    return CheckOutcome(result, len(partitions), len(kept), None, time.monotonic() - start)
