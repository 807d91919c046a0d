"""The HA tests' histories checked by the product's linearizability checker (``tropic.ha.linearizability``,
Wing-Gong with Lowe's memoisation), with models of the example programs' exact replies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ha.harness import Op
from tropic.ha.linearizability import PENDING, CheckResult, Model, Operation, check

KVKeyState = str | None  # one key of examples/ha/kv.py: missing, or the string appended to it


class KVStringModel(Model[KVKeyState]):
    """examples/ha/kv.py's ``append`` (concatenates, returns the whole string) and ``get``, partitioned
    per key (each partition starts from a missing key)."""

    def init(self) -> KVKeyState:
        return None

    def step(self, state: KVKeyState, input: Any, output: Any) -> tuple[bool, KVKeyState]:
        if input["op"] == "get":
            return output is PENDING or output == {"value": state}, state
        if input["op"] == "append":
            new = (state or "") + input["value"]
            return output is PENDING or output == {"value": new}, new
        raise ValueError(f"unknown kv operation {input['op']!r}")

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        by_key: dict[str, list[Operation]] = {}
        for op in history:
            by_key.setdefault(str(op.input["key"]), []).append(op)
        return list(by_key.values())

    def read_only(self, input: Any) -> bool:
        return bool(input["op"] == "get")


class CounterReplyModel(Model[int]):
    """examples/ha/counter.py on one counter: ``incr`` and ``get`` answer ``{"value": n}``."""

    def init(self) -> int:
        return 0

    def step(self, state: int, input: Any, output: Any) -> tuple[bool, int]:
        new = state + int(input.get("by", 1)) if input["op"] == "incr" else state
        return output is PENDING or output == {"value": new}, new

    def read_only(self, input: Any) -> bool:
        return bool(input["op"] == "get")


def linearizable(ops: list[Op], model: Model[Any]) -> bool:
    history = [
        Operation(o.client, o.call, o.ret if o.ok else None, o.op, o.reply if o.ok else PENDING) for o in ops
    ]
    outcome = check(model, history, timeout_s=300)
    assert outcome.result is not CheckResult.UNKNOWN, "the checker ran out of time"
    return outcome.result is CheckResult.OK


def tokens(value: str | None) -> list[str]:
    """The tokens a kv value holds (each written as ``token;``)."""
    return [t for t in (value or "").split(";") if t]
