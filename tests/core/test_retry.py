"""The retry policy: attempts and deadline honoured, non-retryable errors propagate at once, pauses grow
and stay within their jitter band. A fake clock and sleep stand in for time: nothing here sleeps."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.errors import ConfigError
from tropic.retry import NO_RETRY, RetryPolicy


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


class FakeTime:
    """A clock that only moves when slept on (or when an attempt says it took time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def failing(times: int, error: type[Exception] = Transient, then: Any = "ok") -> Callable[[], Any]:
    """A function that raises ``error`` its first ``times`` calls, then returns ``then``; counts calls."""
    calls = itertools.count(1)

    def fn() -> Any:
        n = next(calls)
        fn.calls = n  # type: ignore[attr-defined]
        if n <= times:
            raise error(f"failure {n}")
        return then

    fn.calls = 0  # type: ignore[attr-defined]
    return fn


def run(policy: RetryPolicy, fn: Callable[[], Any], t: FakeTime, **kw: Any) -> Any:
    return policy.call(fn, retry_on=(Transient,), sleep=t.sleep, clock=t.clock, **kw)


def test_a_success_after_failures_returns_its_result() -> None:
    t = FakeTime()
    fn = failing(2)
    assert run(RetryPolicy(attempts=3), fn, t) == "ok"
    assert fn.calls == 3  # type: ignore[attr-defined]
    assert len(t.pauses) == 2


def test_attempts_are_honoured_and_the_last_error_propagates() -> None:
    t = FakeTime()
    fn = failing(10)
    with pytest.raises(Transient, match="failure 4"):
        run(RetryPolicy(attempts=4, deadline_s=None), fn, t)
    assert fn.calls == 4  # type: ignore[attr-defined]
    assert len(t.pauses) == 3  # no pause after the last attempt


def test_one_attempt_means_no_retry() -> None:
    t = FakeTime()
    fn = failing(1)
    with pytest.raises(Transient):
        run(NO_RETRY, fn, t)
    assert fn.calls == 1 and t.pauses == []  # type: ignore[attr-defined]


def test_non_retryable_errors_propagate_at_once() -> None:
    t = FakeTime()
    fn = failing(1, Fatal)
    with pytest.raises(Fatal):
        run(RetryPolicy(attempts=None, deadline_s=None), fn, t)
    assert fn.calls == 1 and t.pauses == []  # type: ignore[attr-defined]


def test_nothing_is_retried_unless_named() -> None:
    t = FakeTime()
    fn = failing(1)
    with pytest.raises(Transient):
        RetryPolicy(attempts=5).call(fn, sleep=t.sleep, clock=t.clock)
    assert fn.calls == 1  # type: ignore[attr-defined]


def test_the_policy_and_the_call_site_both_name_retryable_errors() -> None:
    t = FakeTime()
    policy = RetryPolicy(attempts=5, retry_on=(Fatal,))
    fn = failing(2, Fatal)
    assert policy.call(fn, retry_on=(Transient,), sleep=t.sleep, clock=t.clock) == "ok"
    fn = failing(2, Transient)
    assert policy.call(fn, retry_on=(Transient,), sleep=t.sleep, clock=t.clock) == "ok"


def test_the_deadline_stops_retries_and_no_pause_runs_past_it() -> None:
    t = FakeTime()
    policy = RetryPolicy(
        attempts=None, backoff_s=1.0, multiplier=1.0, max_backoff_s=1.0, jitter=0, deadline_s=3.5
    )
    fn = failing(100)
    with pytest.raises(Transient):
        run(policy, fn, t)
    # attempts at 0, 1, 2, 3 s; a fourth pause would end at 4 s, past the deadline: not begun
    assert fn.calls == 4  # type: ignore[attr-defined]
    assert t.pauses == [1.0, 1.0, 1.0]
    assert t.now - 1000.0 <= 3.5


def test_the_deadline_counts_the_time_attempts_take() -> None:
    t = FakeTime()
    policy = RetryPolicy(attempts=None, backoff_s=0.1, jitter=0, deadline_s=10.0)
    calls = 0

    def slow() -> None:
        nonlocal calls
        calls += 1
        t.now += 4.0  # each attempt takes 4 s
        raise Transient

    with pytest.raises(Transient):
        run(policy, slow, t)
    assert calls == 3  # started at 0, 4.1, 8.3 s; the next would start past 10 s


def test_without_limits_it_retries_until_success() -> None:
    t = FakeTime()
    fn = failing(5000)
    policy = RetryPolicy(attempts=None, deadline_s=None, backoff_s=0.01, max_backoff_s=0.5)
    assert run(policy, fn, t) == "ok"
    assert fn.calls == 5001  # type: ignore[attr-defined]
    assert max(t.pauses) <= 0.5  # the growth is capped, and never overflows


def test_backoff_grows_to_its_cap_without_jitter() -> None:
    policy = RetryPolicy(backoff_s=0.1, multiplier=2.0, max_backoff_s=1.0, jitter=0)
    assert [policy.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@given(
    backoff=st.floats(0.001, 5.0),
    multiplier=st.floats(1.0, 4.0),
    cap=st.floats(0.001, 30.0),
    jitter=st.floats(0.0, 1.0),
    retry=st.integers(0, 2000),
    u=st.floats(0.0, 1.0, exclude_max=True),
)
def test_a_jittered_pause_stays_within_its_band_and_the_cap(
    backoff: float, multiplier: float, cap: float, jitter: float, retry: int, u: float
) -> None:
    policy = RetryPolicy(backoff_s=backoff, multiplier=multiplier, max_backoff_s=cap, jitter=jitter)
    try:
        base = min(cap, backoff * multiplier**retry)
    except OverflowError:
        base = cap
    pause = policy.delay(retry, rng=lambda: u)
    assert base * (1 - jitter) - 1e-9 <= pause <= min(cap, base * (1 + jitter)) + 1e-9


def test_pauses_are_jittered_and_grow() -> None:
    policy = RetryPolicy(backoff_s=0.1, multiplier=2.0, max_backoff_s=100.0, jitter=0.25)
    rng = random.Random(7)
    pauses = [[policy.delay(n, rng.random) for _ in range(200)] for n in range(4)]
    for n, ps in enumerate(pauses):
        base = 0.1 * 2**n
        assert all(base * 0.75 <= p <= base * 1.25 for p in ps)
        assert len(set(ps)) > 100  # really random, not a constant factor
    # doubling beats a jitter of 25 %: every pause of a retry is longer than any of the retry before
    for a, b in itertools.pairwise(pauses):
        assert max(a) < min(b)


def test_call_passes_the_jittered_pauses_to_sleep_and_tells_on_retry() -> None:
    t = FakeTime()
    seen: list[tuple[str, float]] = []
    policy = RetryPolicy(attempts=4, backoff_s=0.5, jitter=0.5, deadline_s=None)
    rng = iter([0.0, 0.5, 0.999]).__next__
    run(policy, failing(3), t, rng=rng, on_retry=lambda e, p: seen.append((str(e), p)))
    assert t.pauses == pytest.approx([0.25, 1.0, 2.0])  # the last one jittered up to 3 s, capped at 2 s
    assert seen == [(f"failure {i + 1}", p) for i, p in enumerate(t.pauses)]


def test_an_interrupting_sleep_lets_the_attempt_decide_to_stop() -> None:
    """``sleep=event.wait`` returns at once when the event is set; the next attempt sees it."""
    stopped = False
    calls = 0

    def attempt() -> str | None:
        nonlocal calls
        calls += 1
        if stopped:
            return None
        raise Transient

    def sleep(_: float) -> bool:
        nonlocal stopped
        stopped = True
        return True

    assert (
        RetryPolicy(attempts=None, deadline_s=None).call(attempt, retry_on=(Transient,), sleep=sleep) is None
    )
    assert calls == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"backoff_s": -0.1},
        {"max_backoff_s": -1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"deadline_s": 0},
        {"retry_on": (ValueError, "oops")},
    ],
)
def test_bad_policies_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


def test_the_api_client_policy_is_the_shared_one() -> None:
    from tropic.api import RetryPolicy as ApiRetryPolicy
    from tropic.api.client import RetryPolicy as ClientRetryPolicy

    assert ApiRetryPolicy is RetryPolicy and ClientRetryPolicy is RetryPolicy
    assert (
        RetryPolicy(attempts=5, backoff_s=0.01, max_backoff_s=0.1, jitter=0.1, deadline_s=2.0).attempts == 5
    )
