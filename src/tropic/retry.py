"""Retry as a policy object: how many attempts, how long to pause between them (growing, jittered), an
overall deadline, and which errors deserve another attempt. Code that retries calls
:meth:`RetryPolicy.call`; it does not loop on failure itself.

Time and randomness are injectable (``sleep``, ``clock``, ``rng``) so that callers can make a pause
interruptible (``sleep=stop_event.wait``) and tests run without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tropic.errors import ConfigError

__all__ = ["NO_RETRY", "RetryPolicy"]

T = TypeVar("T")

Errors = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts``: calls in all, the first included (None: no limit, then ``deadline_s`` or the caller's
    own stop condition bounds the retries). ``backoff_s``: the pause before the first retry; each further
    pause is ``multiplier`` times longer, up to ``max_backoff_s``. ``jitter``: every pause is scaled by a
    random factor within ``1 ± jitter`` (callers that failed together do not retry together), and never
    exceeds ``max_backoff_s``. ``deadline_s``: seconds from the first attempt after which no retry
    starts; a pause that would end later is not begun (None: no deadline). ``retry_on``: the exception
    types worth another attempt; a call site adds the transient errors of its own layer (see
    :meth:`call`), and any other error propagates at once.
    """

    attempts: int | None = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.25
    deadline_s: float | None = 30.0
    retry_on: Errors = ()

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ConfigError(f"retry attempts must be at least 1 (or None: no limit), not {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(
                f"retry backoff must be >= 0 s, not {self.backoff_s} s (at most {self.max_backoff_s} s)"
            )
        if self.multiplier < 1:
            raise ConfigError(f"retry backoff multiplier must be >= 1, not {self.multiplier}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"retry jitter must be within 0..1, not {self.jitter}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ConfigError(
                f"retry deadline must be positive (or None: no deadline), not {self.deadline_s}"
            )
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise ConfigError(f"retry_on must list exception types, not {self.retry_on!r}")

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The pause before retry number ``retry`` (0: the first retry, after the first failure).

        ``rng`` returns a float in [0, 1) and places the pause within the jitter band."""
        if self.backoff_s == 0:
            return 0.0
        try:
            grown = self.backoff_s * self.multiplier**retry
        except OverflowError:  # after many retries without limit: the cap applies anyway
            grown = self.max_backoff_s
        base = min(self.max_backoff_s, grown)
        return min(self.max_backoff_s, base * (1.0 + self.jitter * (2.0 * rng() - 1.0)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: Errors = (),
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_retry: Callable[[BaseException, float], None] | None = None,
    ) -> T:
        """Return ``fn()``, calling it again after an error listed in ``self.retry_on`` or ``retry_on``
        while the policy allows; then that last error propagates unchanged, as does any other error at
        once. ``on_retry(error, pause)`` is told of each retry before its pause (e.g. to log it)."""
        retryable = self.retry_on + retry_on
        start = clock()
        failures = 0
        while True:
            try:
                return fn()
            except retryable as e:
                failures += 1
                if self.attempts is not None and failures >= self.attempts:
                    raise
                pause = self.delay(failures - 1, rng)
                if self.deadline_s is not None and clock() + pause - start > self.deadline_s:
                    raise
                if on_retry is not None:
                    on_retry(e, pause)
                sleep(pause)


NO_RETRY = RetryPolicy(attempts=1)
