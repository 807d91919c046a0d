"""The Wing-Gong/Lowe checker against a brute-force one (every order consistent with real time) on small
histories, linearizable by construction or arbitrary; hand examples; the time budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from tropic.ha.linearizability import (
    PENDING,
    CheckResult,
    CounterModel,
    KVModel,
    Model,
    Operation,
    QueueModel,
    check,
)


def brute_force(model: Model[Any], history: Sequence[Operation]) -> bool:
    """Linearizable iff some order of all operations respects real time (a before b when a returned
    strictly before b was called; a pending operation returns at infinity) and is a legal run."""
    n = len(history)

    def before(a: Operation, b: Operation) -> bool:
        return a.return_time is not None and a.return_time < b.call_time

    def search(done: frozenset[int], state: Any) -> bool:
        if len(done) == n:
            return True
        for i in range(n):
            if i in done:
                continue
            if any(before(history[j], history[i]) for j in range(n) if j not in done and j != i):
                continue  # some operation not yet placed must come before i
            ok, new = model.step(state, history[i].input, history[i].output)
            if ok and search(done | {i}, new):
                return True
        return False

    return search(frozenset(), model.init())


def op(client: str, call: float, ret: float | None, input: Any, output: Any = None) -> Operation:
    return Operation(client, call, ret, input, PENDING if ret is None else output)


def put(k: str, v: str) -> dict[str, Any]:
    return {"op": "put", "key": k, "value": v}


def get(k: str) -> dict[str, Any]:
    return {"op": "get", "key": k}


def append(k: str, v: str) -> dict[str, Any]:
    return {"op": "append", "key": k, "value": v}


# --- hand examples ----------------------------------------------------------------------------------
def test_sequential_history_is_linearizable() -> None:
    h = [op("a", 0, 1, put("x", "1")), op("a", 2, 3, get("x"), "1"), op("b", 4, 5, get("y"), None)]
    assert check(KVModel(), h).result is CheckResult.OK


def test_stale_read_after_a_completed_write_is_illegal() -> None:
    h = [op("a", 0, 1, put("x", "1")), op("b", 2, 3, get("x"), None)]
    outcome = check(KVModel(), h)
    assert outcome.result is CheckResult.ILLEGAL
    assert outcome.linearizable is False


def test_concurrent_read_may_see_either_value() -> None:
    for seen in (None, "1"):
        h = [op("a", 0, 10, put("x", "1")), op("b", 1, 2, get("x"), seen)]
        assert check(KVModel(), h).result is CheckResult.OK


def test_reads_must_agree_on_one_order() -> None:
    # Two writes concurrent with two readers that see them in opposite orders: not linearizable.
    h = [
        op("w1", 0, 10, put("x", "1")),
        op("w2", 0, 10, put("x", "2")),
        op("r1", 1, 2, get("x"), "1"),
        op("r1", 3, 4, get("x"), "2"),
        op("r2", 1, 2, get("x"), "2"),
        op("r2", 3, 4, get("x"), "1"),
    ]
    assert check(KVModel(), h).result is CheckResult.ILLEGAL
    assert brute_force(KVModel(), h) is False


def test_touching_intervals_are_concurrent() -> None:
    # A read called at the instant the write returns may be ordered before it.
    h = [op("a", 0, 5, put("x", "1")), op("b", 5, 6, get("x"), None)]
    assert check(KVModel(), h).result is CheckResult.OK


def test_timed_out_write_may_or_may_not_have_happened() -> None:
    took_effect = [op("a", 0, None, put("x", "1")), op("b", 5, 6, get("x"), "1")]
    never = [op("a", 0, None, put("x", "1")), op("b", 5, 6, get("x"), None)]
    both = [*took_effect[:1], op("b", 5, 6, get("x"), "1"), op("b", 7, 8, get("x"), None)]
    assert check(KVModel(), took_effect).result is CheckResult.OK
    assert check(KVModel(), never).result is CheckResult.OK
    assert check(KVModel(), both).result is CheckResult.ILLEGAL  # once seen, it cannot be unseen


def test_timed_out_write_cannot_act_before_its_call() -> None:
    h = [op("b", 0, 1, get("x"), "1"), op("a", 2, None, put("x", "1"))]
    assert check(KVModel(), h).result is CheckResult.ILLEGAL


def test_append_order_is_checked() -> None:
    h = [
        op("a", 0, 3, append("x", "a")),
        op("b", 0, 3, append("x", "b")),
        op("c", 4, 5, get("x"), "ba"),
    ]
    assert check(KVModel(), h).result is CheckResult.OK
    bad = [*h[:2], op("c", 4, 5, get("x"), "a")]
    assert check(KVModel(), bad).result is CheckResult.ILLEGAL


def test_partitioned_per_key() -> None:
    h = [op("a", 0, 1, put("x", "1")), op("a", 0, 1, put("y", "2")), op("b", 2, 3, get("y"), "2")]
    outcome = check(KVModel(), h)
    assert outcome.result is CheckResult.OK and outcome.partitions == 2


def test_pending_reads_are_dropped() -> None:
    h = [op("a", 0, 1, put("x", "1")), op("b", 2, None, get("x"))]
    assert check(KVModel(), h).operations == 1


def test_counter_and_queue_hand_cases() -> None:
    c = [op("a", 0, 2, {"op": "incr", "by": 1}, 1), op("b", 1, 3, {"op": "incr", "by": 1}, 2)]
    assert check(CounterModel(), c).result is CheckResult.OK
    c_bad = [op("a", 0, 1, {"op": "incr", "by": 1}, 2)]
    assert check(CounterModel(), c_bad).result is CheckResult.ILLEGAL
    q = [
        op("a", 0, 1, {"op": "enqueue", "value": 1}),
        op("a", 2, 3, {"op": "enqueue", "value": 2}),
        op("b", 4, 5, {"op": "dequeue"}, 2),
    ]
    assert check(QueueModel(), q).result is CheckResult.ILLEGAL
    q_ok = [*q[:2], op("b", 4, 5, {"op": "dequeue"}, 1), op("b", 6, 7, {"op": "dequeue"}, 2)]
    assert check(QueueModel(), q_ok).result is CheckResult.OK


def test_time_budget_is_reported_not_hung() -> None:
    # Many concurrent appends that never returned and reads that see none of them: every subset and
    # order of the pending appends is a state, far more than a millisecond can explore... but the cache
    # makes the search finish eventually; the budget must answer first.
    n = 40
    h = [op(f"c{i}", 0, None, append("x", str(i % 10))) for i in range(n)]
    h += [op(f"r{i}", 1 + 2 * i, 2 + 2 * i, get("x"), "impossible") for i in range(3)]
    h += [op(f"w{i}", 0, 100, append("x", str(i))) for i in range(12)]
    outcome = check(KVModel(), h, timeout_s=0.05)
    assert outcome.result is CheckResult.UNKNOWN
    assert outcome.linearizable is None
    assert outcome.elapsed_s < 10


def test_large_sequential_history_is_quick() -> None:
    h: list[Operation] = []
    for i in range(20_000):
        key = f"k{i % 50}"
        h.append(op("a", 2 * i, 2 * i + 1, put(key, str(i))))
    outcome = check(KVModel(), h, timeout_s=60)
    assert outcome.result is CheckResult.OK and outcome.partitions == 50


# --- generated histories against the brute force ----------------------------------------------------
def _kv_inputs() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(["x", "y"])
    vals = st.sampled_from(["1", "2", "3"])
    return st.one_of(st.builds(put, keys, vals), st.builds(get, keys), st.builds(append, keys, vals))


def _counter_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda by: {"op": "incr", "by": by}, st.integers(1, 2)), st.just({"op": "get"})
    )


def _queue_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"op": "enqueue", "value": v}, st.integers(1, 3)),
        st.just({"op": "dequeue"}),
    )


MODELS: dict[str, tuple[Model[Any], Any]] = {
    "kv": (KVModel(), _kv_inputs),
    "counter": (CounterModel(), _counter_inputs),
    "queue": (QueueModel(), _queue_inputs),
}


def _model_output(model: Model[Any], state: Any, input: dict[str, Any]) -> tuple[Any, Any]:
    """The output the sequential model gives ``input`` in ``state``, and the state after it."""
    if isinstance(model, KVModel):  # the state here: a plain dict (the model keeps fingerprints)
        key, now = input["key"], dict(state)
        if input["op"] == "get":
            return now.get(key), state
        now[key] = input["value"] if input["op"] == "put" else now.get(key, "") + input["value"]
        return None, tuple(sorted(now.items()))
    if isinstance(model, CounterModel):
        new = model.step(state, input, PENDING)[1]
        return new, new
    assert isinstance(model, QueueModel)
    if input["op"] == "dequeue":
        return (state[0] if state else None), state[1:]
    return None, (*state, input["value"])


@st.composite
def linearizable_history(draw: st.DrawFn, name: str) -> tuple[Model[Any], list[Operation]]:
    """A sequential run whose operations get intervals around their linearization points (some never
    return: they took effect at their point or not at all)."""
    model, inputs = MODELS[name]
    n = draw(st.integers(1, 7))
    state = () if isinstance(model, KVModel) else model.init()
    history = []
    for i in range(n):
        input = draw(inputs())
        point = 10.0 * (i + 1)
        call = point - draw(st.integers(0, 25))
        ret = point + draw(st.integers(0, 25))
        pending = draw(st.integers(0, 5)) == 0
        if pending and not draw(st.booleans()):
            history.append(op(f"c{i}", call, None, input))  # never took effect
            continue
        out, state = _model_output(model, state, input)
        history.append(op(f"c{i}", call, None if pending else ret, input, out))
    return model, history


@st.composite
def arbitrary_history(draw: st.DrawFn, name: str) -> tuple[Model[Any], list[Operation]]:
    model, inputs = MODELS[name]
    n = draw(st.integers(1, 6))
    history = []
    outputs: dict[str, Any] = {
        "kv": st.sampled_from([None, "1", "2", "3", "12", "21", "11"]),
        "counter": st.integers(0, 5),
        "queue": st.sampled_from([None, 1, 2, 3]),
    }
    for i in range(n):
        call = draw(st.integers(0, 20))
        ret = None if draw(st.integers(0, 6)) == 0 else call + draw(st.integers(0, 10))
        history.append(op(f"c{i}", call, ret, draw(inputs()), draw(outputs[name])))
    return model, history


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(MODELS))
@SETTINGS
@given(data=st.data())
def test_generated_linearizable_histories_pass(name: str, data: st.DataObject) -> None:
    model, history = data.draw(linearizable_history(name))
    assert brute_force(model, history) is True
    assert check(model, history).result is CheckResult.OK


@pytest.mark.parametrize("name", sorted(MODELS))
@SETTINGS
@given(data=st.data())
def test_checker_agrees_with_brute_force(name: str, data: st.DataObject) -> None:
    model, history = data.draw(arbitrary_history(name))
    expected = brute_force(model, history)
    outcome = check(model, history)
    assert outcome.result is (CheckResult.OK if expected else CheckResult.ILLEGAL), history


FIND = settings(database=None, phases=[Phase.generate], max_examples=500)


def test_arbitrary_histories_are_of_both_kinds() -> None:
    # Guards the generator: it must produce both answers, else the comparison above proves little.
    bad = find(arbitrary_history("kv"), lambda mh: not brute_force(*mh), settings=FIND)
    good = find(
        arbitrary_history("kv"),
        lambda mh: len(mh[1]) >= 4 and brute_force(*mh),
        settings=FIND,
    )
    assert check(*bad).result is CheckResult.ILLEGAL
    assert check(*good).result is CheckResult.OK
