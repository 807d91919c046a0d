"""Client demand over a day for the follow-the-sun model, and where each client region's requests enter.

**Source.** An hourly file in the format of ``../shared/data/demand/`` (``utc_hour_iso,region_or_language,
count``: manual Wikipedia edit requests of 2011-08-31 geolocated by continent, time-zone band or country).
It is read by :func:`read_hourly`, which checks it (header, 3 columns, ISO times, counts >= 0, each
key's 24 hours exactly once) and smooths every series with a centred 3-hour moving average wrapping
around midnight (edits are bursty; the data's README advises it); the rate at a step is the smoothed
hourly count, linearly interpolated at the step's middle, per second. Key ``XX`` (location unknown) is
left out: it cannot be attached to a place.

**Attachment.** Each client region (a key of the file) enters the cloud at one region of the latency
matrix. When the key is itself a region of the matrix, that is the region. Otherwise the key must be in
:data:`CLIENT_LOCATIONS` (continents and solar time-zone bands, each at a representative populated
place) and is attached to the matrix region nearest to that place by great-circle distance, among the
regions of :data:`REGION_LOCATIONS` (approximate city of each AWS region). A key in neither table, or a
matrix none of whose regions has a location, is one clear error.

**Without the data**: :func:`business_hours` is a documented model (each client region's demand follows
business hours in its local solar time), and ``src/tropic/data/demand-sample/business_hours.csv`` is that
model written in the real file's format (:func:`business_hours_csv`).
"""

from __future__ import annotations

import importlib.resources
import math
import os
from pathlib import Path

from tropic.autopilot.regional import load_demand
from tropic.errors import ConfigError
from tropic.sun.contract import Demand, LatencyMatrix

DEFAULT_DEMAND = Path("../shared/data/demand/wikipedia_edits_2011-08-31_by_lonband.csv")
UNKNOWN_KEYS = frozenset({"XX"})
DAY_S = 86_400

# Approximate location (latitude, longitude) of each AWS region's city.
REGION_LOCATIONS: dict[str, tuple[float, float]] = {
    "us-east-1": (38.9, -77.4),  # N. Virginia
    "us-east-2": (40.0, -83.0),  # Ohio
    "us-west-1": (37.4, -122.0),  # N. California
    "us-west-2": (45.8, -119.7),  # Oregon
    "ca-central-1": (45.5, -73.6),  # Montreal
    "ca-west-1": (51.0, -114.1),  # Calgary
    "mx-central-1": (20.6, -100.4),  # Queretaro
    "sa-east-1": (-23.5, -46.6),  # Sao Paulo
    "eu-west-1": (53.3, -6.3),  # Dublin
    "eu-west-2": (51.5, -0.1),  # London
    "eu-west-3": (48.9, 2.3),  # Paris
    "eu-central-1": (50.1, 8.7),  # Frankfurt
    "eu-central-2": (47.4, 8.5),  # Zurich
    "eu-north-1": (59.3, 18.1),  # Stockholm
    "eu-south-1": (45.5, 9.2),  # Milan
    "eu-south-2": (41.6, -0.9),  # Aragon
    "il-central-1": (32.1, 34.8),  # Tel Aviv
    "me-south-1": (26.1, 50.6),  # Bahrain
    "me-central-1": (24.5, 54.4),  # UAE
    "af-south-1": (-33.9, 18.4),  # Cape Town
    "ap-south-1": (19.1, 72.9),  # Mumbai
    "ap-south-2": (17.4, 78.5),  # Hyderabad
    "ap-east-1": (22.3, 114.2),  # Hong Kong
    "ap-southeast-1": (1.35, 103.8),  # Singapore
    "ap-southeast-2": (-33.9, 151.2),  # Sydney
    "ap-southeast-3": (-6.2, 106.8),  # Jakarta
    "ap-southeast-4": (-37.8, 145.0),  # Melbourne
    "ap-southeast-5": (3.1, 101.7),  # Kuala Lumpur
    "ap-southeast-7": (13.8, 100.5),  # Bangkok
    "ap-northeast-1": (35.7, 139.7),  # Tokyo
    "ap-northeast-2": (37.6, 127.0),  # Seoul
    "ap-northeast-3": (34.7, 135.5),  # Osaka
}

# A representative populated place (latitude, longitude) per client region of the demand files:
# continents (the data's codes) and solar time-zone bands UTC+hh (longitude hh x 15 degrees, at the
# latitude where most of the band's population lives).
CLIENT_LOCATIONS: dict[str, tuple[float, float]] = {
    "EU": (49.0, 9.0),
    "NA": (39.0, -90.0),
    "CA": (19.0, -90.0),
    "SA": (-15.0, -50.0),
    "AS": (28.0, 105.0),
    "OC": (-30.0, 145.0),
    "AF": (5.0, 20.0),
    "UTC-12": (-14.0, -175.0),
    "UTC-11": (-14.0, -170.0),
    "UTC-10": (21.0, -157.0),
    "UTC-09": (61.0, -150.0),
    "UTC-08": (37.0, -120.0),
    "UTC-07": (40.0, -105.0),
    "UTC-06": (32.0, -92.0),
    "UTC-05": (38.0, -77.0),
    "UTC-04": (-15.0, -60.0),
    "UTC-03": (-23.0, -46.0),
    "UTC-02": (-8.0, -35.0),
    "UTC-01": (38.0, -25.0),
    "UTC+00": (51.0, 0.0),
    "UTC+01": (48.0, 15.0),
    "UTC+02": (45.0, 28.0),
    "UTC+03": (35.0, 45.0),
    "UTC+04": (30.0, 60.0),
    "UTC+05": (25.0, 75.0),
    "UTC+06": (22.0, 88.0),
    "UTC+07": (12.0, 105.0),
    "UTC+08": (25.0, 118.0),
    "UTC+09": (36.0, 135.0),
    "UTC+10": (-30.0, 150.0),
    "UTC+11": (-20.0, 165.0),
    "UTC+12": (-40.0, 175.0),
}


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2, dl = math.radians(a[0]), math.radians(b[0]), math.radians(b[1] - a[1])
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return 6371.0 * math.acos(max(-1.0, min(1.0, c)))


def attach(keys: list[str], matrix: LatencyMatrix, where: str = "demand") -> dict[str, str]:
    """Client region -> the matrix region its requests enter (see the module docstring)."""
    located = [r for r in matrix.regions if r in REGION_LOCATIONS]
    out: dict[str, str] = {}
    for key in keys:
        if key in matrix.rtt_ms:
            out[key] = key
            continue
        place = CLIENT_LOCATIONS.get(key)
        if place is None:
            raise ConfigError(
                f"{where}: client region {key!r} is not a region of the latency matrix and has no "
                "location in the attachment table (continents EU, NA, ...; bands UTC-12..UTC+12)"
            )
        if not located:
            raise ConfigError(
                f"{where}: client region {key!r} needs a matrix region with a known location; none of "
                f"{', '.join(matrix.regions[:5])}... has one"
            )
        out[key] = min(located, key=lambda r: (great_circle_km(place, REGION_LOCATIONS[r]), r))
    return out


def _series_rate(hourly: tuple[float, ...], t_s: float) -> float:
    h = (t_s / 3600.0) % 24
    lo = int(h)
    frac = h - lo
    return (hourly[lo] * (1 - frac) + hourly[(lo + 1) % 24] * frac) / 3600.0


def demand_from_hourly(
    hourly: dict[str, tuple[float, ...]],
    matrix: LatencyMatrix,
    *,
    hours: float = 24,
    step_min: float = 15,
    read_fraction: float = 0.9,
    where: str = "demand",
) -> Demand:
    """A :class:`Demand` from hourly counts per client region (counts per hour -> requests per second at
    each step's middle)."""
    if not 0 < step_min <= 24 * 60:
        raise ConfigError(f"the step must be between 0 and 1440 minutes, got {step_min}")
    if not 0 < hours <= 24 * 7:
        raise ConfigError(f"the day must last between 0 and 168 hours, got {hours}")
    if not 0.0 <= read_fraction <= 1.0:
        raise ConfigError(f"the read fraction must be between 0 and 1, got {read_fraction}")
    step_s = round(step_min * 60)
    steps = max(1, round(hours * 3600 / step_s))
    keys = sorted(k for k in hourly if k not in UNKNOWN_KEYS)
    if not keys:
        raise ConfigError(f"{where}: no client region with a known location")
    attached = attach(keys, matrix, where)
    rate = tuple({k: _series_rate(hourly[k], (i + 0.5) * step_s) for k in keys} for i in range(steps))
    return Demand(
        step_s=step_s, client_regions=tuple(keys), attach=attached, rate=rate, read_fraction=read_fraction
    )


def read_hourly(path: str | os.PathLike[str], *, smooth_h: int = 3) -> dict[str, tuple[float, ...]]:
    """Hourly counts per key of a demand file, checked and smoothed (see the module docstring): the
    autopilot's demand sensor reads the same format with the same rules."""
    return load_demand(path, smooth_h=smooth_h).hourly


def load(
    path: str | os.PathLike[str],
    matrix: LatencyMatrix,
    *,
    hours: float = 24,
    step_min: float = 15,
    read_fraction: float = 0.9,
    smooth_h: int = 3,
) -> Demand:
    """Read a demand file (see the module docstring) and attach its client regions to ``matrix``."""
    return demand_from_hourly(
        read_hourly(path, smooth_h=smooth_h),
        matrix,
        hours=hours,
        step_min=step_min,
        read_fraction=read_fraction,
        where=str(path),
    )


# --- the business-hours model (no data) ---------------------------------------------------------------
# Client regions of the model: solar time-zone bands with a relative weight (rough shares of Internet
# users; documented, not measured).
BUSINESS_WEIGHTS: dict[str, float] = {
    "UTC-08": 0.8,
    "UTC-05": 1.2,
    "UTC-03": 0.5,
    "UTC+00": 0.6,
    "UTC+01": 1.2,
    "UTC+03": 0.4,
    "UTC+05": 0.8,
    "UTC+08": 1.0,
    "UTC+09": 0.8,
    "UTC+10": 0.3,
}


def business_level(local_h: float) -> float:
    """Relative demand at local solar hour ``local_h``: 0.15 at night, 1.0 from 09:00 to 17:00, linear
    ramps 07:00-09:00 and 17:00-21:00."""
    h = local_h % 24
    if 9 <= h < 17:
        return 1.0
    if 7 <= h < 9:
        return 0.15 + 0.85 * (h - 7) / 2
    if 17 <= h < 21:
        return 1.0 - 0.85 * (h - 17) / 4
    return 0.15


def business_hours(
    weights: dict[str, float] | None = None, peak_per_hour: float = 10_000.0
) -> dict[str, tuple[float, ...]]:
    """Hourly counts per band: ``weight x peak_per_hour x business_level(local hour)``, the local hour
    being the UTC hour plus the band's offset."""
    out: dict[str, tuple[float, ...]] = {}
    for band, w in (weights or BUSINESS_WEIGHTS).items():
        offset = int(band[3:]) if band.startswith("UTC") else 0
        out[band] = tuple(w * peak_per_hour * business_level(h + offset + 0.5) for h in range(24))
    return out


def business_hours_csv(day: str = "2026-01-01") -> str:
    """The business-hours model in the real file's format (the shipped sample)."""
    lines = ["utc_hour_iso,region_or_language,count"]
    for band, series in business_hours().items():
        lines += [f"{day}T{h:02d}:00:00Z,{band},{round(v)}" for h, v in enumerate(series)]
    return "\n".join(lines) + "\n"


def business_sample_path() -> Path:
    return Path(str(importlib.resources.files("tropic") / "data" / "demand-sample" / "business_hours.csv"))
