"""PlanetLab-format traces: the shipped sample, clear errors for malformed files, deterministic replay."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tropic.autopilot.traces import (
    TracePlayer,
    generate_planetlab,
    load_planetlab,
    parse_planetlab,
    sample_path,
)
from tropic.errors import ConfigError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "planetlab" / "20110303.csv.gz"


def test_the_shipped_sample_is_the_generator_output_in_planetlab_format() -> None:
    trace = load_planetlab(sample_path())
    assert len(trace.names) == 60 and trace.samples == 288
    assert all(0.0 <= v <= 1.0 for row in trace.rows for v in row)
    assert gzip.decompress(sample_path().read_bytes()).decode() == generate_planetlab()
    # diurnal: most VMs' busiest hour is well above their quietest
    swings = [max(r) - min(r) for r in trace.rows]
    assert sum(s > 0.1 for s in swings) > 40


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: empty trace"),
        ("name,a,b\nx,1,2\n", "line 1: header must be vm,u0"),
        ("vm,u0,u1\nx,1\n", "line 2: VM 'x' has 1 samples, the header 2"),
        ("vm,u0,u1\nx,1,2\ny,1,abc\n", "line 3: VM 'y', u1: 'abc' is not a number"),
        ("vm,u0,u1\nx,1,200\n", "line 2: VM 'x', u1: 200 is not a percentage"),
        ("vm,u0,u1\nx,1,2\nx,3,4\n", "line 3: VM 'x' appears twice"),
        ("vm,u0,u1\n,1,2\n", "line 2: the VM name"),
        ("vm,u0,u1\n", "no VM rows"),
    ],
)
def test_malformed_traces_name_the_file_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_planetlab(text, "day.csv")
    assert str(e.value).startswith("day.csv")


def test_unreadable_files_are_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ConfigError, match=r"bad.csv.gz is not a valid gzip file"):
        load_planetlab(bad)
    with pytest.raises(ConfigError, match="cannot read trace"):
        load_planetlab(tmp_path / "missing.csv.gz")
    with pytest.raises(ConfigError, match="is a directory"):
        load_planetlab(tmp_path)
    plain = tmp_path / "day.csv"
    plain.write_text("vm,u0,u1\nx,10,20\n")
    assert load_planetlab(plain).rows == ((0.1, 0.2),)


def test_replay_is_deterministic_and_driven_by_the_given_clock() -> None:
    trace = parse_planetlab("vm,u0,u1,u2\nx,10,20,30\ny,50,60,70\n", "t")
    player = TracePlayer(trace, start=1000.0, speed=2.0)
    again = TracePlayer(trace, start=1000.0, speed=2.0)
    keys = [f"r1/vm-{i}" for i in range(20)]
    assert [player.row_of(k) for k in keys] == [again.row_of(k) for k in keys]
    assert len({player.row_of(k) for k in keys}) == 2  # both rows are used
    row = trace.rows[player.row_of("r1/vm-0")]
    assert player.cpu("r1/vm-0", 1000.0) == row[0]
    assert player.cpu("r1/vm-0", 1000.0 + 150) == row[1]  # 300 s of trace at twice the speed
    assert player.cpu("r1/vm-0", 1000.0 + 300) == row[2]
    assert player.cpu("r1/vm-0", 1000.0 + 450) == row[0]  # the day loops
    assert player.cpu("r1/vm-0", 0.0) == row[0]  # before the start: the first sample
    pinned = TracePlayer(trace, assign={"r1/vm-0": "y"})
    assert pinned.cpu("r1/vm-0", 0.0) == 0.5
    with pytest.raises(ConfigError, match="no VM 'z'"):
        TracePlayer(trace, assign={"r1/vm-0": "z"})
    with pytest.raises(ConfigError, match="speed"):
        TracePlayer(trace, speed=0)


@pytest.mark.realdata
def test_a_real_planetlab_day_loads() -> None:
    if not REAL.is_file():
        pytest.skip(
            f"real PlanetLab trace not found at {REAL} (optional reference data; the sample covers the rest)"
        )
    trace = load_planetlab(REAL)
    assert len(trace.names) == 1052 and trace.samples == 288
