"""Inter-region round-trip matrices for the follow-the-sun model.

A matrix file has the format of ``../shared/data/latency/aws-cloudping-p50.json``:
``{"metadata": {...}, "data": {"<from>": {"<to>": ms, ...}, ...}}``. Validation is strict, because a
silently wrong matrix gives silently wrong placements: every region needs a row, every row every region
(its own included: the diagonal is the intra-region round trip), every value a finite number of ms >= 0.
The matrix need not be symmetric (the measured one is not); the row of ``a`` is read for a request from
``a``. A malformed file raises one :class:`~tropic.errors.ConfigError` naming the file and the entry.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from tropic.errors import ConfigError
from tropic.sun.contract import LatencyMatrix

DEFAULT_LATENCY = Path("../shared/data/latency/aws-cloudping-p50.json")


def parse_matrix(doc: object, where: str) -> LatencyMatrix:
    """A :class:`LatencyMatrix` from the decoded JSON ``doc`` of ``where`` (validated, see the module)."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f'{where}: expected {{"data": {{"<from>": {{"<to>": ms}}}}}} with at least one region'
        )
    regions = tuple(str(r) for r in data)
    for a in regions:
        if not a.strip():
            raise ConfigError(f"{where}: a region name is empty")
    rtt: dict[str, dict[str, float]] = {}
    for a in regions:
        row = data[a]
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: data.{a} must map regions to milliseconds, got {type(row).__name__}")
        unknown = sorted(str(b) for b in row if b not in data)
        if unknown:
            raise ConfigError(f"{where}: data.{a}.{unknown[0]}: {unknown[0]} has no row of its own in data")
        missing = [b for b in regions if b not in row]
        if missing:
            raise ConfigError(f"{where}: data.{a}.{missing[0]} is missing (every row needs every region)")
        out: dict[str, float] = {}
        for b in regions:
            ms = row[b]
            if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms) or ms < 0:
                raise ConfigError(f"{where}: data.{a}.{b} = {ms!r} is not a round trip in ms (a number >= 0)")
            out[b] = float(ms)
        rtt[a] = out
    return LatencyMatrix(regions=regions, rtt_ms=rtt)


def load_matrix(path: str | os.PathLike[str]) -> LatencyMatrix:
    """Read and validate a matrix file (see the module docstring)."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read latency matrix {where}: {getattr(e, 'strerror', None) or e}"
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}, line {e.lineno}: not JSON ({e.msg})") from None
    return parse_matrix(doc, str(where))


def without(matrix: LatencyMatrix, removed: Iterable[str]) -> LatencyMatrix:
    """The matrix with ``removed`` regions taken out (each must be in it; at least one region stays)."""
    gone = set(removed)
    unknown = sorted(gone - set(matrix.regions))
    if unknown:
        raise ConfigError(f"cannot remove region {unknown[0]}: not in the matrix")
    keep = tuple(r for r in matrix.regions if r not in gone)
    if not keep:
        raise ConfigError("cannot remove every region of the matrix")
    return LatencyMatrix(keep, {a: {b: matrix.rtt_ms[a][b] for b in keep} for a in keep})


def only(matrix: LatencyMatrix, kept: Iterable[str]) -> LatencyMatrix:
    """The matrix restricted to ``kept`` regions."""
    keep = set(kept)
    return without(matrix, [r for r in matrix.regions if r not in keep])


def to_json(matrix: LatencyMatrix, metadata: dict[str, str] | None = None) -> str:
    """The matrix in the file format (for derived matrices)."""
    meta = metadata or {"unit": "milliseconds"}
    return json.dumps({"metadata": meta, "data": matrix.rtt_ms}, indent=1) + "\n"
