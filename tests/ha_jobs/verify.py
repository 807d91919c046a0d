"""A checked load on a replicated KV job: closed-loop clients put unique keys and read back earlier ones;
after the faults, every acknowledged put is read back (lost acknowledged writes) and the whole history is
checked for linearizability (:mod:`tropic.ha.linearizability`, per key)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ha.harness import KV, History, Load, wait_for
from tropic.ha.client import HAClient
from tropic.ha.linearizability import PENDING, KVModel, Operation, check

PROGRAM = [sys.executable, str(KV)]


def step(worker: int, i: int) -> dict[str, Any]:
    """Two puts of a fresh key, then a read of an earlier key of this worker."""
    if i % 3 == 2:
        return {"op": "get", "key": f"w{worker}-{max(0, i - 2 - 3 * (i % 7))}"}
    return {"op": "put", "key": f"w{worker}-{i}", "value": f"v{worker}-{i}"}


def start_load(zk_uri: str, job: str, workers: int = 3) -> Load:
    return Load(zk_uri, job, workers, step, timeout=60.0).start()


def operations(history: History) -> list[Operation]:
    out = []
    for op in history.ops:
        output: Any = PENDING
        if op.ok:
            output = op.reply.get("value") if op.op["op"] == "get" else None
        out.append(Operation(op.client, op.call, op.ret if op.ok else None, op.op, output))
    return out


def lost_acknowledged_writes(zk_uri: str, job: str, history: History) -> list[str]:
    """The acknowledged puts whose value a linearizable read does not find."""
    lost = []
    with HAClient(zk_uri, job, timeout=60.0) as c:
        for op in history.ops:
            if op.ok and op.op["op"] == "put":
                got = c.call({"op": "get", "key": op.op["key"]})
                if got.get("value") != op.op["value"]:
                    lost.append(op.op["key"])
    return lost


def linearizable(history: History) -> bool | None:
    return check(KVModel(), operations(history), timeout_s=120).linearizable


def acknowledged(history: History) -> int:
    return sum(1 for op in history.ops if op.ok)


def replica_log_tail(run_dir: Path) -> str:
    """Every replica's output (for a failing test's message)."""
    return "\n".join(
        f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(run_dir.glob("*/*.log"))
    )


__all__ = ["PROGRAM", "acknowledged", "linearizable", "lost_acknowledged_writes", "start_load", "wait_for"]
