"""The models the kill tests check histories with accept what the example programs may answer and refuse
what they may not (so a passing kill test means something)."""

from __future__ import annotations

from ha.harness import Op
from ha.linear import CounterReplyModel, KVStringModel, linearizable


def op(
    client: str, call: float, ret: float, request: dict[str, object], reply: object, ok: bool = True
) -> Op:
    return Op(client, call, ret, request, reply, ok)


def test_the_kv_model_accepts_concurrent_appends_in_either_order_and_refuses_a_lost_one() -> None:
    a = {"op": "append", "key": "k", "value": "a;"}
    b = {"op": "append", "key": "k", "value": "b;"}
    get = {"op": "get", "key": "k"}
    concurrent = [op("c1", 0, 2, a, {"value": "b;a;"}), op("c2", 1, 3, b, {"value": "b;"})]
    assert linearizable([*concurrent, op("c3", 4, 5, get, {"value": "b;a;"})], KVStringModel())
    assert not linearizable([*concurrent, op("c3", 4, 5, get, {"value": "b;"})], KVStringModel())  # a lost
    applied_twice = [op("c1", 0, 1, a, {"value": "a;"}), op("c2", 2, 3, get, {"value": "a;a;"})]
    assert not linearizable(applied_twice, KVStringModel())
    unknown = [op("c1", 0, 1, a, None, ok=False), op("c2", 2, 3, get, {"value": "a;"})]
    assert linearizable(unknown, KVStringModel())  # a timed-out append may have taken effect


def test_the_counter_model_refuses_a_stale_read() -> None:
    incr, get = {"op": "incr", "name": "n", "by": 1}, {"op": "get", "name": "n"}
    assert linearizable(
        [op("a", 0, 1, incr, {"value": 1}), op("b", 2, 3, get, {"value": 1})], CounterReplyModel()
    )
    assert not linearizable(
        [op("a", 0, 1, incr, {"value": 1}), op("b", 2, 3, get, {"value": 0})], CounterReplyModel()
    )
