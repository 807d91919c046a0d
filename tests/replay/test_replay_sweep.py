"""The speedup sweep finds the highest speedup under the p99 bound (on a stubbed runner)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tropic.errors import InvalidArguments
from tropic.replay.sweep import parse_speedups, run_uri, sweep


@dataclass
class Outcome:
    p99_ms: float
    healthy: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": {"p99": self.p99_ms}}


def stub(limit: float, calls: list[float]) -> Any:
    """p99 grows with speedup and crosses 100 ms just above ``limit``."""

    def run(speedup: float) -> Outcome:
        calls.append(speedup)
        return Outcome(p99_ms=100.0 * speedup / limit if speedup > limit else 50.0)

    return run


def test_finds_the_highest_speedup_under_the_bound_and_stops_at_the_first_failure() -> None:
    calls: list[float] = []
    result = sweep([1000, 1, 10, 50, 100, 500], stub(120, calls), bound_ms=100)
    assert calls == [1, 10, 50, 100, 500]  # increasing order; 1000 never run
    assert result.best == 100 and result.first_failure == 500
    assert [p.passed for p in result.points] == [True, True, True, True, False]
    assert result.to_dict()["best_speedup"] == 100


def test_refinement_bisects_between_the_last_pass_and_the_first_failure() -> None:
    calls: list[float] = []
    result = sweep([100, 1000], stub(300, calls), bound_ms=100, refine=3)
    assert calls[:2] == [100, 1000]
    assert len(calls) == 5
    assert result.best is not None and 100 < result.best <= 300
    assert result.first_failure is not None and result.first_failure > 300


def test_an_unhealthy_run_fails_even_under_the_bound() -> None:
    result = sweep([1, 2], lambda s: Outcome(p99_ms=1.0, healthy=s < 2), bound_ms=100)
    assert result.best == 1 and result.first_failure == 2


def test_nothing_passes() -> None:
    result = sweep([5, 10], lambda s: Outcome(p99_ms=500.0), bound_ms=100, stop_at_failure=False)
    assert result.best is None and len(result.points) == 2


def test_speedup_lists_and_store_uris() -> None:
    assert parse_speedups("1, 10,50x,10") == [1.0, 10.0, 50.0]
    for bad in ("", "a", "0", "-5", "1,,nan"):
        with pytest.raises(InvalidArguments):
            parse_speedups(bad)
    assert run_uri(None, 10) is None
    assert run_uri("memory://", 10) == "memory://"
    assert run_uri("sqlite:///tmp/r.db", 100) == "sqlite:///tmp/r-s100.db"
    assert run_uri("zk://127.0.0.1:2181/tropic", 2.5) == "zk://127.0.0.1:2181/tropic-s2.5"
    assert run_uri("zk://127.0.0.1:2181", 10) == "zk://127.0.0.1:2181/replay-s10"
    assert run_uri("sqlite:///x/{speedup}.db", 10) == "sqlite:///x/10.db"
