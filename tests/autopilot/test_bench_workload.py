"""Reading PlanetLab days: the shipped sample, and one clear error (file, line, what) for a bad file."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tropic.autopilot.bench.workload import TraceError, read_trace, sample_path

HEADER = "vm," + ",".join(f"u{i}" for i in range(4))


def write(tmp_path: Path, text: str, *, gz: bool = True) -> Path:
    p = tmp_path / ("day.csv.gz" if gz else "day.csv")
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return p


def test_the_shipped_sample_is_a_planetlab_day() -> None:
    t = read_trace(sample_path())
    assert t.steps == 288 and len(t.names) == t.util.shape[0] >= 20
    assert t.util.min() >= 0.0 and t.util.max() <= 1.0 and t.util.mean() > 0.02


def test_a_small_file_reads_as_fractions_and_max_vms_keeps_the_first(tmp_path: Path) -> None:
    p = write(tmp_path, f"{HEADER}\na,0,50,100,10\nb,1,2,3,4\n", gz=False)
    t = read_trace(p)
    assert t.names == ("a", "b") and t.util[0].tolist() == [0.0, 0.5, 1.0, 0.1]
    assert read_trace(p, max_vms=1).names == ("a",)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", ":1:", "empty file"),
        ("name,a,b\nx,1,2\n", ":1:", "header"),
        (f"{HEADER}\na,1,2,3\n", ":2:", "expected 5 fields"),
        (f"{HEADER}\na,1,2,3,4\nb,1,x,3,4\n", ":3:", "'x' is not an integer"),
        (f"{HEADER}\na,1,2,300,4\n", ":2:", "outside 0..100"),
        (f"{HEADER}\n,1,2,3,4\n", ":2:", "empty VM name"),
        (f"{HEADER}\n", "", "no VM rows"),
    ],
)
def test_a_malformed_trace_names_the_file_the_line_and_the_fault(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    p = write(tmp_path, text)
    with pytest.raises(TraceError) as e:
        read_trace(p)
    assert str(p) + where in e.value.message and what in e.value.message


def test_a_file_that_is_not_gzip_nor_text_or_missing_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(TraceError, match="not a readable gzip"):
        read_trace(bad)
    with pytest.raises(TraceError, match="no such trace file"):
        read_trace(tmp_path / "missing.csv.gz")
