"""The retention policy: how long, and how many, final transaction records a store keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tropic.errors import ConfigError

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}  # lowercase m: minutes
COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}  # uppercase M: millions
_PART = re.compile(r"^(\d+)([smhdwKMG]?)$")
EXPECTED = "an age (30d, 12h, 90m, 3600s, 2w) and/or a count (10M, 100K, 5000), comma-separated"


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep final records at most ``max_age_s`` seconds (from their end) and at most ``max_count`` of
    them (the newest); None: no limit of that kind."""

    max_age_s: float | None = None
    max_count: int | None = None

    @staticmethod
    def parse(text: str) -> Retention:
        """``30d,10M``, ``7d``, ``100K``...: one clear :class:`~tropic.errors.ConfigError` otherwise."""
        age: float | None = None
        count: int | None = None
        parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else []
        if not parts or any(not p for p in parts) or len(parts) > 2:
            raise ConfigError(f"retention {text!r} is malformed: expected {EXPECTED}")
        for part in parts:
            m = _PART.match(part)
            if m is None:
                raise ConfigError(f"retention {text!r}: {part!r} is neither an age nor a count ({EXPECTED})")
            value, unit = int(m.group(1)), m.group(2)
            if unit in AGE_UNITS:
                if age is not None:
                    raise ConfigError(f"retention {text!r} gives two ages")
                age = float(value * AGE_UNITS[unit])
            else:
                if count is not None:
                    raise ConfigError(f"retention {text!r} gives two counts")
                count = value * COUNT_UNITS[unit]
            if value == 0:
                raise ConfigError(f"retention {text!r}: {part!r} would keep nothing; give a positive limit")
        return Retention(age, count)
