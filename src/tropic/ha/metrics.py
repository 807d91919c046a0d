"""The figures ``tropic ha bench`` reports, as pure functions of what the clients recorded: latency
percentiles, the longest window without a successful request, and the acknowledged writes missing (or
applied twice) in the final state."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "TOKEN_END",
    "WriteAudit",
    "audit_writes",
    "longest_gap",
    "longest_gaps",
    "max_unavailability",
    "percentile",
    "tokens",
]

TOKEN_END = ";"  # every write appends a unique token ending with this, so the final value lists them


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def longest_gap(successes: Iterable[float], start: float, end: float) -> tuple[float, float]:
    """The longest window ``(from, to)`` within ``[start, end]`` in which no request succeeded: between
    consecutive successful completions, counting the window's two ends (a run with no success at all is
    unavailable throughout). Completions outside the window are ignored."""
    if end < start:
        raise ValueError(f"the window ends ({end}) before it starts ({start})")
    points = sorted(t for t in successes if start <= t <= end)
    edges = [start, *points, end]
    return max(itertools.pairwise(edges), key=lambda ab: ab[1] - ab[0])


def longest_gaps(successes: Iterable[float], start: float, end: float, n: int) -> list[tuple[float, float]]:
    """The ``n`` longest windows (as :func:`longest_gap`), longest first."""
    if end < start:
        raise ValueError(f"the window ends ({end}) before it starts ({start})")
    edges = [start, *sorted(t for t in successes if start <= t <= end), end]
    return sorted(itertools.pairwise(edges), key=lambda ab: ab[0] - ab[1])[:n]


def max_unavailability(successes: Iterable[float], start: float, end: float) -> float:
    """The length of :func:`longest_gap`."""
    a, b = longest_gap(successes, start, end)
    return b - a


def tokens(value: str | None) -> list[str]:
    """The write tokens a final value holds, in order (each written as ``token`` + :data:`TOKEN_END`)."""
    if not value:
        return []
    return [t for t in value.split(TOKEN_END) if t]


@dataclass(frozen=True, slots=True)
class WriteAudit:
    lost: list[tuple[str, str]]  # (key, token) acknowledged but absent from the final value
    duplicated: list[tuple[str, str]]  # (key, token) present more than once (a retry applied twice)
    unexpected: list[tuple[str, str]]  # (key, token) present though never written (should not happen)
    acknowledged: int  # how many acknowledged writes were checked


def audit_writes(
    acknowledged: Mapping[str, Iterable[str]],
    attempted: Mapping[str, Iterable[str]],
    final: Mapping[str, str | None],
) -> WriteAudit:
    """Compare the acknowledged writes (per key, the tokens whose append was acknowledged) and every write
    attempted (acknowledged, failed or timed out: those may or may not have happened) with the final
    values read back."""
    lost: list[tuple[str, str]] = []
    duplicated: list[tuple[str, str]] = []
    unexpected: list[tuple[str, str]] = []
    count = 0
    for key in sorted(set(acknowledged) | set(final)):
        present = tokens(final.get(key))
        seen: set[str] = set()
        for token in present:
            if token in seen:
                duplicated.append((key, token))
            seen.add(token)
        for token in acknowledged.get(key, ()):
            count += 1
            if token not in seen:
                lost.append((key, token))
        allowed = set(attempted.get(key, ())) | set(acknowledged.get(key, ()))
        unexpected.extend((key, t) for t in sorted(seen - allowed))
    return WriteAudit(lost, sorted(set(duplicated)), unexpected, count)
