"""Speedup sweep: replay at increasing speedups and find the highest one whose p99 latency stays under a
bound. The runner is a parameter, so the search is the same over any store (embedded SQLite, ZooKeeper)
and can be tested with a stub.

Runs go in increasing speedup order and stop at the first run over the bound (latency only grows with
load); ``refine`` then bisects, geometrically, between the best passing and the first failing speedup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tropic.errors import InvalidArguments


class RunOutcome(Protocol):
    """What the sweep needs from one replay (:class:`~tropic.replay.ReplayResult` provides it)."""

    @property
    def p99_ms(self) -> float: ...

    @property
    def healthy(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


Runner = Callable[[float], RunOutcome]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    speedup: float
    p99_ms: float
    healthy: bool
    passed: bool
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "speedup": self.speedup,
            "p99_ms": self.p99_ms,
            "healthy": self.healthy,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SweepResult:
    bound_ms: float
    points: list[SweepPoint] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        """The highest speedup that passed (p99 under the bound, every transaction final)."""
        passed = [p.speedup for p in self.points if p.passed]
        return max(passed) if passed else None

    @property
    def first_failure(self) -> float | None:
        failed = [p.speedup for p in self.points if not p.passed]
        return min(failed) if failed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bound_ms": self.bound_ms,
            "best_speedup": self.best,
            "first_failing_speedup": self.first_failure,
            "runs": [p.to_dict() for p in sorted(self.points, key=lambda p: p.speedup)],
        }


def parse_speedups(text: str) -> list[float]:
    """``"1,10,50,100"`` -> ``[1.0, 10.0, 50.0, 100.0]`` (sorted, duplicates dropped)."""
    values: set[float] = set()
    for part in text.split(","):
        token = part.strip().lower()
        if not token:
            continue
        if len(token) > 1 and token.endswith("x"):
            token = token[:-1]
        try:
            value = float(token)
        except ValueError:
            raise InvalidArguments(f"bad speedup {part.strip()!r} in --sweep {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InvalidArguments(f"speedups must be positive numbers, got {part.strip()!r}")
        values.add(value)
    if not values:
        raise InvalidArguments(f"--sweep {text!r} names no speedup")
    return sorted(values)


def sweep(
    speedups: Iterable[float],
    run: Runner,
    *,
    bound_ms: float,
    stop_at_failure: bool = True,
    refine: int = 0,
    on_point: Callable[[SweepPoint], None] | None = None,
) -> SweepResult:
    """Run ``run(speedup)`` for each speedup in increasing order and record which keep p99 < bound."""
    if not bound_ms > 0:
        raise InvalidArguments(f"the p99 bound must be positive, got {bound_ms}")
    if refine < 0:
        raise InvalidArguments(f"refine must not be negative, got {refine}")
    result = SweepResult(bound_ms)

    def measure(speedup: float) -> SweepPoint:
        outcome = run(speedup)
        p99 = float(outcome.p99_ms)
        point = SweepPoint(
            speedup, p99, outcome.healthy, outcome.healthy and p99 < bound_ms, outcome.to_dict()
        )
        result.points.append(point)
        if on_point is not None:
            on_point(point)
        return point

    for speedup in sorted(set(speedups)):
        if not measure(speedup).passed and stop_at_failure:
            break
    for _ in range(refine):
        low, high = result.best, result.first_failure
        if low is None or high is None or high <= low:
            break
        mid = float(f"{math.sqrt(low * high):.3g}")
        if not low < mid < high:
            break
        measure(mid)
    return result


def run_uri(uri: str | None, speedup: float) -> str | None:
    """The store URI for one run of a sweep: each run needs a fresh store. ``{speedup}`` in the URI is
    replaced; otherwise ``-s<speedup>`` goes before a file's suffix (``sqlite:///r.db`` ->
    ``sqlite:///r-s100.db``) or at the end of the path (``zk://host:2181/tropic`` -> ``.../tropic-s100``).
    ``zk://host:2181`` gets the chroot ``/replay-s100``. ``None`` (a temporary store) and ``memory://``
    stay as they are."""
    if uri is None or uri.split("://", 1)[0] == "memory":
        return uri
    tag = f"{speedup:g}"
    if "{speedup}" in uri:
        return uri.replace("{speedup}", tag)
    scheme, sep, rest = uri.rpartition("://")
    if sep and "/" not in rest.rstrip("/"):  # a server with no path (zk://host:2181): add a chroot
        return f"{uri.rstrip('/')}/replay-s{tag}"
    head, slash, last = rest.rpartition("/")
    stem, dot, suffix = last.rpartition(".")
    name = f"{stem}-s{tag}.{suffix}" if dot and stem else f"{last}-s{tag}"
    return f"{scheme}{sep}{head}{slash}{name}"
