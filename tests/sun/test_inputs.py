"""Loading matrices and demand: strict validation, one clear error per bad input, the attachment table,
the business-hours sample, and the real files when ../shared/data is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tropic.errors import ConfigError
from tropic.sun import demand as demand_mod
from tropic.sun.latency import load_matrix, only, to_json, without
from tropic.sun.run import latency_sample_path

from .helpers import MATRIX

ROOT = Path(__file__).resolve().parents[2]
SHARED = next(
    (b / "shared" / "data" for b in (ROOT.parent, ROOT.parent.parent) if (b / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
AWS = SHARED / "latency" / "aws-cloudping-p50.json"
BANDS = SHARED / "demand" / "wikipedia_edits_2011-08-31_by_lonband.csv"
CONTINENTS = SHARED / "demand" / "wikipedia_edits_2011-08-31_by_continent.csv"


def write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def test_the_shipped_sample_loads() -> None:
    m = load_matrix(latency_sample_path())
    assert "us-east-1" in m.regions and m.rtt("us-east-1", "us-east-1") > 0


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"nodata": {}}, "expected"),
        ({"data": {"a": {"a": 1, "b": 2}}}, "data.a.b: b has no row"),
        ({"data": {"a": {"a": 1}, "b": {"b": 1}}}, "data.a.b is missing"),
        ({"data": {"a": {"a": -1}}}, "data.a.a = -1"),
        ({"data": {"a": {"a": "5"}}}, "data.a.a = '5'"),
        ({"data": {"a": {"a": True}}}, "data.a.a = True"),
        ({"data": {"a": [1]}}, "data.a must map"),
    ],
)
def test_a_malformed_matrix_is_one_clear_error(tmp_path: Path, doc: object, needle: str) -> None:
    p = write(tmp_path, doc)
    with pytest.raises(ConfigError, match=r"m\.json") as e:
        load_matrix(p)
    assert needle in e.value.message


def test_a_matrix_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"data": {\n  "a": }', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json, line 2: not JSON"):
        load_matrix(p)


def test_regions_can_be_removed_and_the_result_written_back(tmp_path: Path) -> None:
    m = without(MATRIX, ["C"])
    assert m.regions == ("A", "B") and "C" not in m.rtt_ms["A"]
    assert only(MATRIX, ["C"]).regions == ("C",)
    p = tmp_path / "derived.json"
    p.write_text(to_json(m), encoding="utf-8")
    assert load_matrix(p) == m
    with pytest.raises(ConfigError, match="region Z: not in the matrix"):
        without(MATRIX, ["Z"])


def test_the_business_hours_sample_is_the_model_written_out() -> None:
    path = demand_mod.business_sample_path()
    assert path.read_text(encoding="utf-8") == demand_mod.business_hours_csv()
    hourly = demand_mod.read_hourly(path, smooth_h=1)
    # UTC+09 works 09:00-17:00 local = 00:00-08:00 UTC; at 12 UTC (21 local) it is at night.
    assert hourly["UTC+09"][3] > 5 * hourly["UTC+09"][15]


def test_client_regions_attach_to_the_nearest_matrix_region() -> None:
    m = load_matrix(latency_sample_path())
    attached = demand_mod.attach(["EU", "NA", "UTC+09", "us-west-2"], m)
    assert attached == {
        "EU": "eu-central-1",
        "NA": "us-east-1",
        "UTC+09": "ap-northeast-1",
        "us-west-2": "us-west-2",  # a key that is a matrix region is its own entry
    }
    # Remove Frankfurt: Europe falls back to Dublin.
    assert demand_mod.attach(["EU"], without(m, ["eu-central-1"]))["EU"] == "eu-west-1"


def test_a_client_region_in_neither_the_matrix_nor_the_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="client region 'Atlantis' is not a region of the latency matrix"):
        demand_mod.attach(["Atlantis"], load_matrix(latency_sample_path()))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("when,key,count\n", "line 1: header"),
        ("utc_hour_iso,region_or_language,count\n2011-08-31T00:00:00Z,EU\n", "line 2: expected 3 columns"),
        ("utc_hour_iso,region_or_language,count\nyesterday,EU,1\n", "'yesterday' is not an ISO time"),
        ("utc_hour_iso,region_or_language,count\n2011-08-31T00:00:00Z,EU,-4\n", "count '-4'"),
        ("utc_hour_iso,region_or_language,count\n2011-08-31T00:00:00Z,EU,1\n", "EU has no count"),
    ],
)
def test_a_malformed_demand_file_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "d.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"d\.csv") as e:
        demand_mod.load(p, MATRIX)
    assert needle in e.value.message


def test_a_demand_region_missing_from_the_matrix_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    rows = ["utc_hour_iso,region_or_language,count"] + [f"2011-08-31T{h:02d}:00:00Z,D,5" for h in range(24)]
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"d\.csv: client region 'D' is not a region of the latency matrix"):
        demand_mod.load(p, MATRIX)


def test_demand_steps_interpolate_the_smoothed_hours() -> None:
    d = demand_mod.demand_from_hourly({"A": tuple(3600.0 * h for h in range(24))}, MATRIX, step_min=30)
    assert len(d.rate) == 48 and d.step_s == 1800
    assert d.rate[0]["A"] == pytest.approx(0.25)  # 00:15 -> a quarter of the way to hour 1's 1/s


real = pytest.mark.skipif(
    not (AWS.is_file() and BANDS.is_file()),
    reason=f"reference data not found under {SHARED} (optional: ../shared/data)",
)


@pytest.mark.realdata
@real
def test_the_real_matrix_and_demand_load_and_attach() -> None:
    m = load_matrix(AWS)
    assert len(m.regions) == 32
    bands = demand_mod.load(BANDS, m)
    assert len(bands.rate) == 96 and "XX" not in bands.client_regions
    assert bands.attach["UTC+01"] in {"eu-central-1", "eu-central-2", "eu-south-1"}
    assert bands.attach["UTC+09"] in {"ap-northeast-1", "ap-northeast-2", "ap-northeast-3"}
    cont = demand_mod.load(CONTINENTS, m)
    assert cont.attach["SA"] == "sa-east-1"
