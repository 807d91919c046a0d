"""The bench's figures (unavailability windows, percentiles, lost and duplicated writes) and its load
generator and kill scheduler, without a cluster: clients here are in-process KV stores."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.ha.contract import Consistency, HAUnavailable
from tropic.ha.linearizability import CheckResult, KVModel, check
from tropic.ha.load import KillScheduler, LoadGenerator, PipeClient, ProgramFailed, history
from tropic.ha.metrics import (
    audit_writes,
    longest_gap,
    longest_gaps,
    max_unavailability,
    percentile,
    tokens,
)


# --- max_unavailability -----------------------------------------------------------------------------
def test_unavailability_hand_cases() -> None:
    assert max_unavailability([], 0, 10) == 10  # never available
    assert max_unavailability([5], 0, 10) == 5
    assert max_unavailability([1, 2, 3, 9], 0, 10) == 6  # 3 -> 9
    assert max_unavailability([0, 10], 0, 10) == 10
    assert max_unavailability([0, 4, 10], 0, 10) == 6
    assert max_unavailability([-5, 15, 4], 0, 10) == 6  # outside the window: ignored
    assert max_unavailability([], 3, 3) == 0
    assert longest_gap([1, 2, 3, 9], 0, 10) == (3, 9)
    assert longest_gaps([1, 2, 3, 9], 0, 10, 2) == [(3, 9), (0, 1)]
    with pytest.raises(ValueError):
        max_unavailability([], 2, 1)


times = st.lists(st.floats(0, 100, allow_nan=False), max_size=30)


@given(times)
def test_unavailability_is_the_largest_gap(points: list[float]) -> None:
    got = max_unavailability(points, 0, 100)
    # Brute force: a window [a, b] with a, b among the edges and no success strictly inside.
    edges = sorted({0.0, 100.0, *points})
    best = max(b - a for a in edges for b in edges if b >= a and not any(a < p < b for p in points))
    assert got == pytest.approx(best)
    assert got >= 100 / (len(points) + 1) - 1e-9  # n points cut [0, 100] in n + 1 pieces at best


@given(times, st.floats(0, 100, allow_nan=False))
def test_one_more_success_never_lengthens_a_window(points: list[float], extra: float) -> None:
    assert max_unavailability([*points, extra], 0, 100) <= max_unavailability(points, 0, 100)


def test_percentiles() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 99) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1), st.floats(1, 100))
def test_percentile_is_a_value_with_enough_below(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert sum(v <= p for v in values) >= q / 100 * len(values)


# --- lost writes ------------------------------------------------------------------------------------
def test_audit_hand_cases() -> None:
    assert tokens(None) == [] and tokens("a.1;b.2;") == ["a.1", "b.2"]
    acked = {"x": ["a.1", "a.2"], "y": ["b.1"]}
    attempted = {"x": ["a.3"], "y": []}
    audit = audit_writes(acked, attempted, {"x": "a.1;a.3;a.2;", "y": "b.1;"})
    assert audit.lost == [] and audit.duplicated == [] and audit.unexpected == []
    assert audit.acknowledged == 3
    audit = audit_writes(acked, attempted, {"x": "a.1;", "y": "b.1;b.1;z.9;"})
    assert audit.lost == [("x", "a.2")]
    assert audit.duplicated == [("y", "b.1")]
    assert audit.unexpected == [("y", "z.9")]
    assert audit_writes(acked, attempted, {}).lost == [("x", "a.1"), ("x", "a.2"), ("y", "b.1")]


@given(
    st.dictionaries(st.sampled_from(["x", "y", "z"]), st.lists(st.integers(0, 50), unique=True), max_size=3),
    st.data(),
)
def test_audit_finds_exactly_the_dropped_writes(acked_ids: dict[str, list[int]], data: st.DataObject) -> None:
    acked = {k: [f"c.{i}" for i in ids] for k, ids in acked_ids.items()}
    dropped = {
        (k, t) for k, ts in acked.items() for t in ts if data.draw(st.booleans(), label=f"drop {k} {t}")
    }
    final = {k: "".join(f"{t};" for t in ts if (k, t) not in dropped) for k, ts in acked.items()}
    audit = audit_writes(acked, {}, final)
    assert set(audit.lost) == dropped
    assert audit.acknowledged == sum(len(ts) for ts in acked.values())


# --- the load generator on in-process clients -------------------------------------------------------
class MemoryKV:
    """A linearizable KV store (one lock); ``fail_every`` makes every n-th call raise HAUnavailable,
    half of those after applying the request (the client cannot tell which)."""

    def __init__(self, *, fail_every: int = 0, drop_acknowledged: bool = False) -> None:
        self.data: dict[str, str] = {}
        self.lock = threading.Lock()
        self.calls = 0
        self.fails = 0
        self.fail_every = fail_every
        self.drop_acknowledged = drop_acknowledged

    def call(
        self, op: dict[str, Any], *, consistency: Consistency = "linearizable", read: bool = False
    ) -> Any:
        with self.lock:
            self.calls += 1
            fail = self.fail_every > 0 and self.calls % self.fail_every == 0
            self.fails += fail
            if fail and self.fails % 2 == 0:
                raise HAUnavailable("no replica answered (before applying)")
            if op["op"] == "get":
                reply: Any = {"value": self.data.get(op["key"])}
            elif self.drop_acknowledged and self.calls % 7 == 0:
                reply = {"ok": True}  # acknowledged, never applied: a bug the audit must see
            else:
                self.data[op["key"]] = self.data.get(op["key"], "") + op["value"]
                reply = {"ok": True}
            if fail:
                raise HAUnavailable("no replica answered (after applying)")
            return reply

    def close(self) -> None:
        pass


def run_load(kv: MemoryKV, requests: int = 2000) -> LoadGenerator:
    load = LoadGenerator([(f"c{i}", kv) for i in range(4)], keys=5, seed=1)
    load.start()
    while len(load.records) < requests:
        time.sleep(0.001)
    load.stop()
    return load


def final_audit(kv: MemoryKV, load: LoadGenerator) -> Any:
    acked: dict[str, list[str]] = {}
    attempted: dict[str, list[str]] = {}
    for r in load.records:
        if r.kind == "append" and r.value is not None:
            (acked if r.ok else attempted).setdefault(r.key, []).append(r.value.rstrip(";"))
    return audit_writes(acked, attempted, kv.data)


def test_load_on_a_correct_store_is_linearizable_and_loses_nothing() -> None:
    kv = MemoryKV(fail_every=10)
    load = run_load(kv)
    records = load.records
    assert any(not r.ok for r in records) and any(r.kind == "get" and r.ok for r in records)
    assert check(KVModel(), history(records), timeout_s=60).result is CheckResult.OK
    audit = final_audit(kv, load)
    assert audit.lost == [] and audit.duplicated == [] and audit.acknowledged > 0


def test_load_on_a_store_that_drops_writes_is_caught() -> None:
    kv = MemoryKV(drop_acknowledged=True)
    load = run_load(kv)
    assert final_audit(kv, load).lost
    assert check(KVModel(), history(load.records), timeout_s=60).result is CheckResult.ILLEGAL


# --- the kill scheduler -----------------------------------------------------------------------------
class Victims:
    def __init__(self) -> None:
        self.live = {"r1", "r2", "r3"}
        self.killed: list[str] = []
        self.done = threading.Event()

    def victims(self) -> list[str]:
        return sorted(self.live)

    def kill(self, victim: str) -> dict[str, Any]:
        self.live.discard(victim)
        self.killed.append(victim)
        if not self.live:
            self.done.set()
        return {"pid": 1}


def test_kill_scheduler_kills_live_victims_until_none_is_left() -> None:
    target = Victims()
    t0 = time.monotonic()
    sched = KillScheduler(target, 0.02, clock=lambda: time.monotonic() - t0, seed=3)
    sched.start()
    assert target.done.wait(30)
    deadline = time.monotonic() + 30
    while not sched.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    sched.stop()
    assert sorted(target.killed) == ["r1", "r2", "r3"]  # each once: a dead victim is not chosen again
    assert [e.victim for e in sched.events] == target.killed
    assert all(b.at >= a.at for a, b in zip(sched.events, sched.events[1:], strict=False))
    assert "no live victim" in sched.errors[0]


# --- the baseline client ----------------------------------------------------------------------------
ECHO_KV = (
    "import json, sys\n"
    "d = {}\n"
    "for line in sys.stdin:\n"
    "    op = json.loads(line)\n"
    "    if op['op'] == 'get':\n"
    "        print(json.dumps({'value': d.get(op['key'])}), flush=True)\n"
    "    else:\n"
    "        d[op['key']] = d.get(op['key'], '') + op['value']\n"
    "        print(json.dumps({'ok': True}), flush=True)\n"
)


def test_pipe_client_runs_the_program_alone() -> None:
    import sys

    client = PipeClient([sys.executable, "-c", ECHO_KV])
    try:
        assert client.call({"op": "append", "key": "x", "value": "a;"}) == {"ok": True}
        assert client.call({"op": "get", "key": "x"}) == {"value": "a;"}
    finally:
        client.close()
    dead = PipeClient([sys.executable, "-c", "pass"])
    try:
        with pytest.raises(ProgramFailed, match="exited"):
            dead.call({"op": "get", "key": "x"})
    finally:
        dead.close()


def test_kill_scheduler_stops_at_the_end_of_the_load() -> None:
    target = Victims()
    target.live = {f"r{i}" for i in range(10)}
    ticks = [0.0]

    def clock() -> float:  # time moves only when looked at: independent of the machine's speed
        ticks[0] += 0.004
        return ticks[0]

    sched = KillScheduler(target, 0.01, clock=clock, until=0.055)
    sched.start()
    sched._thread.join(30)  # it ends by itself after the last kill before ``until``
    assert not sched._thread.is_alive()
    assert 1 <= len(sched.events) <= 5 and sched.errors == []
    assert all(e.at < 0.055 + 0.01 for e in sched.events)
