"""Data the placement policies read per region: client demand over the day, inter-region latency, price.

* **Demand**: hourly counts per key (continent, country, time-zone band...) in the format of
  ``../shared/data/demand/`` (``utc_hour_iso,region_or_language,count``, Wikipedia edits of one day).
  Edits are bursty, so the series is smoothed (a centred moving average over ``smooth_h`` hours, wrapping
  around midnight) and read with linear interpolation between hours.
* **Latency**: a round-trip-time matrix in the format of ``../shared/data/latency/aws-cloudping-p50.json``
  (``{"metadata": {...}, "data": {"<from>": {"<to>": ms}}}``).
* **Price**: per region (optionally grouped by provider), from configuration (a TOML file or a dict).

Small generated samples in the same formats ship with tropic (:func:`demand_sample_path`,
:func:`latency_sample_path`; written by ``scripts/make_planetlab_sample.py``). Malformed input raises
:class:`~tropic.errors.ConfigError` naming the file, the line or key, and what is wrong.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tropic.errors import ConfigError

HOURS = 24


@dataclass(frozen=True, slots=True)
class DemandSeries:
    """Smoothed hourly demand per key over one day (UTC hours 0..23)."""

    source: str
    hourly: dict[str, tuple[float, ...]]

    def at(self, key: str, hour: float) -> float | None:
        """Demand of ``key`` at UTC ``hour`` (fractional, wraps around the day); None for an unknown key."""
        series = self.hourly.get(key)
        if series is None:
            return None
        h = hour % HOURS
        lo = int(h)
        frac = h - lo
        return series[lo] * (1 - frac) + series[(lo + 1) % HOURS] * frac


def demand_sample_path() -> Path:
    return Path(str(importlib.resources.files("tropic") / "data" / "demand-sample" / "by_continent.csv"))


def latency_sample_path() -> Path:
    return Path(str(importlib.resources.files("tropic") / "data" / "latency-sample" / "cloudping-p50.json"))


def _read_text(path: str | os.PathLike[str], what: str) -> tuple[Path, str]:
    where = Path(path)
    try:
        return where, where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {where}: {getattr(e, 'strerror', None) or e}") from None


def smooth(values: tuple[float, ...], window: int) -> tuple[float, ...]:
    """Centred moving average over ``window`` samples, wrapping around (a day is a circle)."""
    if window <= 1:
        return values
    n = len(values)
    half = window // 2
    span = range(-half, window - half)
    return tuple(sum(values[(i + k) % n] for k in span) / len(span) for i in range(n))


def load_demand(path: str | os.PathLike[str], *, smooth_h: int = 3) -> DemandSeries:
    """Read an hourly demand file; every key needs all 24 hours."""
    where, text = _read_text(path, "demand file")
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header != ["utc_hour_iso", "region_or_language", "count"]:
        raise ConfigError(f"{where}, line 1: header must be utc_hour_iso,region_or_language,count")
    counts: dict[str, list[float | None]] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 3:
            raise ConfigError(f"{where}, line {line}: expected 3 columns, got {len(row)}")
        stamp, key, count = row
        try:
            hour = datetime.fromisoformat(stamp.replace("Z", "+00:00")).hour
        except ValueError:
            raise ConfigError(f"{where}, line {line}: {stamp!r} is not an ISO time") from None
        try:
            value = float(count)
        except ValueError:
            raise ConfigError(f"{where}, line {line}: count {count!r} is not a number") from None
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"{where}, line {line}: count {count!r} must be 0 or more")
        slots = counts.setdefault(key, [None] * HOURS)
        if slots[hour] is not None:
            raise ConfigError(f"{where}, line {line}: {key} hour {hour} appears twice")
        slots[hour] = value
    if not counts:
        raise ConfigError(f"{where}: no demand rows")
    out: dict[str, tuple[float, ...]] = {}
    for key, slots in counts.items():
        missing = [h for h, v in enumerate(slots) if v is None]
        if missing:
            raise ConfigError(f"{where}: {key} has no count for UTC hour(s) {missing}")
        out[key] = smooth(tuple(float(v or 0.0) for v in slots), smooth_h)
    return DemandSeries(str(where), out)


def load_latency(path: str | os.PathLike[str]) -> dict[tuple[str, str], float]:
    """Read a round-trip matrix: (from, to) -> milliseconds."""
    where, text = _read_text(path, "latency file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}, line {e.lineno}: not JSON ({e.msg})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f'{where}: expected {{"data": {{"<from>": {{"<to>": ms}}}}}}')
    out: dict[tuple[str, str], float] = {}
    for a, row in data.items():
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: data.{a} must map regions to milliseconds")
        for b, ms in row.items():
            if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0 or not math.isfinite(ms):
                raise ConfigError(f"{where}: data.{a}.{b} = {ms!r} is not a latency in ms")
            out[(str(a), str(b))] = float(ms)
    return out


def load_prices(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, float]:
    """Prices per region (per core-hour, in the operator's currency) from a TOML file with a ``[prices]``
    table, or a mapping: ``{"us-east-1": 0.04}`` or grouped by provider ``{"aws": {"us-east-1": 0.04}}``.
    A region priced twice is refused."""
    where = "price configuration"
    if isinstance(source, Mapping):
        table: Any = source.get("prices", source)
    else:
        path, text = _read_text(source, "price file")
        where = str(path)
        try:
            table = tomllib.loads(text).get("prices")
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not TOML ({e})") from None
        if table is None:
            raise ConfigError(f"{path}: no [prices] table")
    out: dict[str, float] = {}

    def put(region: str, value: Any, key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: {key} = {value!r} is not a price (a number, 0 or more)")
        if region in out:
            raise ConfigError(f"{where}: region {region} is priced twice")
        out[region] = float(value)

    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: prices must be a table of region = price")
    for name, value in table.items():
        if isinstance(value, Mapping):
            for region, price in value.items():
                put(str(region), price, f"{name}.{region}")
        else:
            put(str(name), value, str(name))
    return out


# --- generated samples ------------------------------------------------------------------------------
# Peak UTC hours as the real demand README reports them; levels are invented.
SAMPLE_DEMAND = {
    "EU": (10, 4000.0),
    "NA": (2, 3000.0),
    "AS": (11, 2500.0),
    "SA": (23, 800.0),
    "OC": (6, 400.0),
}
# Region coordinates (approximate city locations) for a synthetic latency matrix.
SAMPLE_REGIONS = {
    "us-east-1": (38.9, -77.0),
    "us-west-2": (45.6, -121.2),
    "eu-west-1": (53.3, -6.3),
    "eu-central-1": (50.1, 8.7),
    "ap-southeast-1": (1.35, 103.8),
    "ap-northeast-1": (35.7, 139.7),
    "sa-east-1": (-23.5, -46.6),
}


def generate_demand(day: str = "2026-01-01") -> str:
    """A demand file of five continents: a smooth diurnal curve each, peaking at its real peak hour."""
    lines = ["utc_hour_iso,region_or_language,count"]
    for key, (peak, level) in SAMPLE_DEMAND.items():
        for h in range(HOURS):
            v = level * (0.35 + 0.65 * (0.5 + 0.5 * math.cos(2 * math.pi * (h - peak) / HOURS)))
            lines.append(f"{day}T{h:02d}:00:00Z,{key},{round(v)}")
    return "\n".join(lines) + "\n"


def generate_latency() -> str:
    """A synthetic RTT matrix: 2 ms plus great-circle distance over fibre (about 100 km per ms of RTT
    after path inflation); the real cloudping medians are within a factor of two of this."""
    data: dict[str, dict[str, float]] = {}
    for a, (la, lo) in SAMPLE_REGIONS.items():
        data[a] = {}
        for b, (lb, mb) in SAMPLE_REGIONS.items():
            p1, p2, dl = math.radians(la), math.radians(lb), math.radians(mb - lo)
            c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
            km = 6371.0 * math.acos(max(-1.0, min(1.0, c)))
            data[a][b] = round(2.0 + km / 100.0, 3)
    meta = {"percentile": "p_50", "timeframe": "synthetic", "unit": "milliseconds"}
    return json.dumps({"metadata": meta, "data": data}, indent=1) + "\n"
