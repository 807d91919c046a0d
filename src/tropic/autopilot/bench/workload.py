"""Reading one day of a PlanetLab CPU trace (CloudSim's workload, CoMon data): ``<day>.csv.gz`` (or plain
``.csv``) with a header ``vm,u0,...,u287`` and one row per VM, its CPU utilisation in percent per 5-minute
interval. A malformed file gets one error naming the file, the line and what is wrong.

A tiny generated sample in the same format ships in ``sample/`` so the bench runs without the real traces.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tropic.autopilot.bench.fleet import FloatArray
from tropic.errors import InvalidArguments

SAMPLE = "sample.csv.gz"


class TraceError(InvalidArguments):
    """A trace file that cannot be read: the message names the file and the line."""


@dataclass(frozen=True)
class Trace:
    """``util[v, k]``: VM ``v``'s CPU utilisation (0..1) in interval ``k``."""

    source: str
    names: tuple[str, ...]
    util: FloatArray

    @property
    def steps(self) -> int:
        return int(self.util.shape[1])


def sample_path() -> Path:
    return Path(str(resources.files("tropic.autopilot.bench") / "sample" / SAMPLE))


def read_trace(path: str | Path, *, max_vms: int | None = None) -> Trace:
    """Read a PlanetLab day; ``max_vms``: keep only the first VMs in file order."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: no such trace file")
    try:
        raw = p.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise TraceError(f"{p}: not a readable gzip file ({e})") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header:
        raise TraceError(f"{p}:1: empty file, expected a header vm,u0,u1,...")
    expected = ["vm", *(f"u{i}" for i in range(len(header) - 1))]
    if len(header) < 2 or [h.strip() for h in header] != expected:
        raise TraceError(f"{p}:1: header must be vm,u0,u1,...,uN; got {','.join(header[:4])}...")
    steps = len(header) - 1
    names: list[str] = []
    values: list[list[int]] = []
    for line, row in enumerate(rows, start=2):
        if max_vms is not None and len(names) >= max_vms:
            break
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != steps + 1:
            raise TraceError(
                f"{p}:{line}: expected {steps + 1} fields (a name and {steps} samples), got {len(row)}"
            )
        name = row[0].strip()
        if not name:
            raise TraceError(f"{p}:{line}: empty VM name")
        try:
            sample = [int(v) for v in row[1:]]
        except ValueError:
            bad = next(v for v in row[1:] if not v.strip().lstrip("-").isdigit())
            raise TraceError(f"{p}:{line}: VM {name}: sample {bad!r} is not an integer percentage") from None
        wrong = [v for v in sample if not 0 <= v <= 100]
        if wrong:
            raise TraceError(f"{p}:{line}: VM {name}: utilisation {wrong[0]} is outside 0..100 percent")
        names.append(name)
        values.append(sample)
    if not names:
        raise TraceError(f"{p}: no VM rows after the header")
    return Trace(str(p), tuple(names), np.array(values, dtype=np.float64) / 100.0)


def write_sample(path: Path, *, vms: int = 60, steps: int = 288, seed: int = 7) -> None:
    """Generate a PlanetLab-format day: daily cycles around per-VM means, noise, occasional bursts (the
    shape of the real traces: mostly low utilisation, a heavy tail)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    out = io.StringIO()
    out.write(",".join(["vm", *(f"u{i}" for i in range(steps))]) + "\n")
    for v in range(vms):
        mean = rng.gamma(1.5, 8.0)
        cycle = mean * 0.5 * np.sin(2 * np.pi * (t / steps + rng.random()))
        noise = rng.normal(0.0, mean * 0.3 + 1.0, steps)
        burst = (rng.random(steps) < 0.02) * rng.uniform(20, 80, steps)
        u = np.clip(np.rint(mean + cycle + noise + burst), 0, 100).astype(int)
        out.write(",".join([f"sample-vm-{v:03d}", *(str(x) for x in u)]) + "\n")
    path.write_bytes(gzip.compress(out.getvalue().encode(), mtime=0))
