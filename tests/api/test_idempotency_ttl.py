"""Idempotency keys live a TTL from their first use: a retry within it gets the first transaction, after it
the key is new, and expired keys leave the cache so its size stays bounded under a constant load."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tropic.api.idempotency import IdempotencyCache, KeyReused, fingerprint, parse_ttl
from tropic.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _creator() -> tuple[list[int], Callable[[tuple[str, str]], int]]:
    made: list[int] = []

    def create(binding: tuple[str, str]) -> int:
        made.append(len(made) + 1)
        return made[-1]

    return made, create


def test_a_retry_within_the_ttl_replays_after_it_the_key_is_new() -> None:
    clock = Clock()
    cache = IdempotencyCache(ttl=60, clock=clock)
    made, create = _creator()
    fp = fingerprint("p", {"a": 1})
    assert cache.run("otto", "k", fp, create) == (1, False)
    clock.now += 59.9
    assert cache.run("otto", "k", fp, create) == (1, True)
    with pytest.raises(KeyReused):  # still the first request's key within the TTL
        cache.run("otto", "k", fingerprint("p", {"a": 2}), create)
    clock.now += 0.1  # the TTL counts from the first use, not the last retry
    assert cache.run("otto", "k", fp, create) == (2, False)
    assert cache.run("otto", "k", fp, create) == (2, True)
    clock.now += 60
    # after the TTL, even a different request may use the key
    assert cache.run("otto", "k", fingerprint("p", {"a": 2}), create) == (3, False)
    assert made == [1, 2, 3]


def test_expired_keys_leave_the_cache_under_a_constant_load() -> None:
    clock = Clock()
    cache = IdempotencyCache(capacity=1_000_000, ttl=100, clock=clock)
    _, create = _creator()
    fp = fingerprint("p", {})
    sizes = []
    for i in range(5000):  # 10 keys per second for 500 s: at most ~1,000 are younger than the TTL
        cache.run("otto", f"k{i}", fp, create)
        clock.now += 0.1
        sizes.append(len(cache))
    assert max(sizes) <= 1001
    assert sizes[-1] >= 999  # the young ones are all kept
    assert cache.run("otto", "k4999", fp, create)[1] is True
    assert cache.run("otto", "k0", fp, create)[1] is False


def test_an_explicit_pass_drops_at_most_its_batch() -> None:
    clock = Clock()
    cache = IdempotencyCache(ttl=10, clock=clock)
    _, create = _creator()
    for i in range(250):
        cache.run("otto", f"k{i}", fingerprint("p", {}), create)
    clock.now += 10
    assert cache.expire(100) == 100
    assert len(cache) == 150
    assert cache.expire(1000) == 150
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400.0), ("90m", 5400.0), ("3600", 3600.0), ("7d", 604800.0)]
)
def test_ttl_parses(text: str, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["0", "0h", "-1h", "soon", "", "1y"])
def test_bad_ttls_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_ttl(text)
