"""Per-VM CPU utilisation traces in the PlanetLab format, and their replay in the simulator.

A trace file is ``<day>.csv.gz`` (or plain ``.csv``): a header ``vm,u0,...,u287``, then one row per VM, its
name then its CPU utilisation in percent for each 5-minute interval of the day (the CloudSim PlanetLab
workload, ``../shared/data/planetlab/``). A malformed file raises :class:`~tropic.errors.ConfigError` naming
the file, the line and what is wrong.

:class:`TracePlayer` plays a trace to the sim driver (it is a :class:`tropic.drivers.base.UtilisationSource`):
each VM gets one row, chosen from its key (``region/name``, kept across migrations) by a stable hash, and
the day loops. Time is explicit: sample 0 plays at ``start`` and the trace runs ``speed`` times faster than
the clock, so tests drive time themselves.

A small generated sample in the same format ships with tropic (:func:`sample_path`, written by
:func:`generate_planetlab`): 60 VMs, one day, diurnal shapes with noise, seeded.
"""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import io
import math
import os
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tropic.errors import ConfigError

STEP_S = 300  # one sample every 5 minutes
SAMPLES_PER_DAY = 288
SAMPLE_DAY = "20260101"


@dataclass(frozen=True, slots=True)
class UtilisationTrace:
    """A loaded trace: ``names[i]``'s utilisation (fraction 0..1) at sample ``j`` is ``rows[i][j]``."""

    source: str
    names: tuple[str, ...]
    rows: tuple[tuple[float, ...], ...]
    step_s: int = STEP_S

    @property
    def samples(self) -> int:
        return len(self.rows[0]) if self.rows else 0


def sample_path(day: str = SAMPLE_DAY) -> Path:
    """The shipped generated sample (a PlanetLab-format day of 60 VMs)."""
    return Path(str(importlib.resources.files("tropic") / "data" / "planetlab-sample" / f"{day}.csv.gz"))


def load_planetlab(path: str | os.PathLike[str], *, max_vms: int | None = None) -> UtilisationTrace:
    """Read one day (``.csv.gz`` or ``.csv``); ``max_vms``: only the first that many rows."""
    where = Path(path)
    if where.is_dir():
        raise ConfigError(f"{where} is a directory; expected a trace file such as 20110303.csv.gz")
    try:
        raw = where.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read trace {where}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ConfigError(f"trace {where} is not a valid gzip file: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"trace {where} is not UTF-8 text (byte {e.start})") from None
    return parse_planetlab(text, str(where), max_vms=max_vms)


def parse_planetlab(text: str, source: str, *, max_vms: int | None = None) -> UtilisationTrace:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ConfigError(f"{source}, line 1: empty trace (expected a header vm,u0,u1,...)")
    want = ["vm", *(f"u{i}" for i in range(len(header) - 1))]
    if header != want or len(header) < 2:
        raise ConfigError(
            f"{source}, line 1: header must be vm,u0,u1,...,u<n> (PlanetLab format), got "
            f"{','.join(header[:4])}{'...' if len(header) > 4 else ''}"
        )
    width = len(header) - 1
    names: list[str] = []
    rows: list[tuple[float, ...]] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if max_vms is not None and len(rows) >= max_vms:
            break
        name = row[0].strip()
        if not name:
            raise ConfigError(f"{source}, line {line}: the VM name (first column) is empty")
        if name in seen:
            raise ConfigError(f"{source}, line {line}: VM {name!r} appears twice")
        if len(row) != width + 1:
            raise ConfigError(
                f"{source}, line {line}: VM {name!r} has {len(row) - 1} samples, the header {width}"
            )
        values: list[float] = []
        for col, cell in enumerate(row[1:]):
            try:
                pct = float(cell)
            except ValueError:
                raise ConfigError(
                    f"{source}, line {line}: VM {name!r}, u{col}: {cell!r} is not a number"
                ) from None
            if not (0.0 <= pct <= 100.0) or math.isnan(pct):
                raise ConfigError(
                    f"{source}, line {line}: VM {name!r}, u{col}: {cell} is not a percentage (0-100)"
                )
            values.append(pct / 100.0)
        seen.add(name)
        names.append(name)
        rows.append(tuple(values))
    if not rows:
        raise ConfigError(f"{source}: the trace has a header but no VM rows")
    return UtilisationTrace(source, tuple(names), tuple(rows))


class TracePlayer:
    """Plays ``trace`` to the simulator: VM ``key``'s CPU utilisation at ``now`` (see the module docstring).
    A key listed in ``assign`` gets that row (by VM name in the trace) instead of its hashed one."""

    def __init__(
        self,
        trace: UtilisationTrace,
        *,
        start: float = 0.0,
        speed: float = 1.0,
        assign: dict[str, str] | None = None,
    ) -> None:
        if speed <= 0 or not math.isfinite(speed):
            raise ConfigError(f"trace speed must be a positive number, not {speed}")
        self.trace = trace
        self.start = start
        self.speed = speed
        index = {n: i for i, n in enumerate(trace.names)}
        self.assign: dict[str, int] = {}
        for key, name in (assign or {}).items():
            if name not in index:
                raise ConfigError(f"{trace.source}: no VM {name!r} to assign to {key}")
            self.assign[key] = index[name]

    def row_of(self, key: str) -> int:
        """The trace row VM ``key`` plays: stable across processes and runs (CRC-32 of the key)."""
        found = self.assign.get(key)
        if found is not None:
            return found
        return zlib.crc32(key.encode()) % len(self.trace.rows)

    def sample_at(self, now: float) -> int:
        """The sample playing at ``now`` (the day loops; before ``start``: the first sample)."""
        elapsed = max(0.0, (now - self.start) * self.speed)
        return int(elapsed // self.trace.step_s) % self.trace.samples

    def cpu(self, key: str, now: float) -> float | None:
        return self.trace.rows[self.row_of(key)][self.sample_at(now)]


def generate_planetlab(vms: int = 60, *, seed: int = 20260101, samples: int = SAMPLES_PER_DAY) -> str:
    """A PlanetLab-format day of ``vms`` VMs: each a diurnal curve (its own base level, amplitude and peak
    hour) plus noise and occasional bursts, as integer percentages; the same text for the same seed."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["vm", *(f"u{i}" for i in range(samples))])
    for k in range(vms):
        base = rng.uniform(3, 35)
        amplitude = rng.uniform(0, 30)
        peak = rng.uniform(0, samples)
        noise = rng.uniform(1, 8)
        row = []
        for i in range(samples):
            level = base + amplitude * (0.5 + 0.5 * math.cos(2 * math.pi * (i - peak) / samples))
            level += rng.gauss(0, noise)
            if rng.random() < 0.01:
                level += rng.uniform(20, 60)  # a burst
            row.append(str(round(min(100.0, max(0.0, level)))))
        w.writerow([f"sample-vm-{k:03d}", *row])
    return out.getvalue()


def write_sample(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` gzipped with a fixed header time, so the same text gives the same bytes."""
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode())


__all__: Sequence[str] = (
    "SAMPLES_PER_DAY",
    "STEP_S",
    "TracePlayer",
    "UtilisationTrace",
    "generate_planetlab",
    "load_planetlab",
    "parse_planetlab",
    "sample_path",
    "write_sample",
)
