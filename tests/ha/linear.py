"""A small linearizability checker for the HA tests: Wing & Gong's search with Lowe's memoisation of
(linearized set, state), on one object's history (the tests partition per key). An operation whose
outcome is unknown (its call failed) may take effect at any time after its call, or never."""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any

from ha.harness import Op

Step = Callable[[Hashable, dict[str, Any]], tuple[Hashable, Any]]  # (state, op) -> (state', reply)


def linearizable(ops: list[Op], init: Hashable, step: Step) -> bool:
    ops = sorted(ops, key=lambda o: o.call)
    n = len(ops)
    full = (1 << n) - 1
    ret = [o.ret if o.ok else float("inf") for o in ops]
    seen: set[tuple[int, Hashable]] = set()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * n + 1000))

    def search(done: int, state: Hashable) -> bool:
        if done == full:
            return True
        if (done, state) in seen:
            return False
        seen.add((done, state))
        pending = [i for i in range(n) if not done >> i & 1]
        horizon = min(ret[i] for i in pending)
        for i in pending:
            if ops[i].call > horizon:
                break  # sorted by call: no later op can go first
            new_state, reply = step(state, ops[i].op)
            if (not ops[i].ok or reply == ops[i].reply) and search(done | 1 << i, new_state):
                return True
            if not ops[i].ok and search(done | 1 << i, state):  # it never took effect
                return True
        return False

    return search(0, init)


def kv_step(state: Hashable, op: dict[str, Any]) -> tuple[Hashable, Any]:
    """One key of examples/ha/kv.py: the state is None or the tuple of appended values (or a put value)."""
    kind = op["op"]
    if kind == "get":
        return state, {"value": list(state) if isinstance(state, tuple) else state}
    if kind == "append":
        new = (*(state if isinstance(state, tuple) else ()), op["value"])
        return new, {"value": list(new)}
    if kind == "put":
        return op["value"], {"ok": True, "prev": list(state) if isinstance(state, tuple) else state}
    raise ValueError(kind)


def counter_step(state: Hashable, op: dict[str, Any]) -> tuple[Hashable, Any]:
    assert isinstance(state, int)
    if op["op"] == "incr":
        return state + op.get("by", 1), {"value": state + op.get("by", 1)}
    if op["op"] == "get":
        return state, {"value": state}
    raise ValueError(op["op"])


def by_key(ops: list[Op], key: str = "key") -> dict[str, list[Op]]:
    out: dict[str, list[Op]] = {}
    for o in ops:
        out.setdefault(str(o.op.get(key)), []).append(o)
    return out


def check(ops: list[Op], step: Step, init: Hashable, key: str = "key") -> bool:
    """The whole history, partitioned per key; the product's checker when it is there."""
    return all(linearizable(part, init, step) for part in by_key(ops, key).values())
