"""``tropic bench soak`` at a tiny size: the mix keeps the model's size, nothing is left in memory, and
the figures it reports are there (their values depend on the machine and are not checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.errors import InvalidArguments
from tropic.scenario.soak import SoakSpec, run_soak


def test_a_short_soak_cycles_every_procedure_and_keeps_no_record(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'soak.db'}"
    r = run_soak(SoakSpec(txns=1200, store=uri, hosts=16, slots=40, slices=4, workers=2))
    assert r["states"] == {"COMMITTED": 1200}
    assert set(r["mix"]) == {"spawn_vm", "migrate_vm", "resize_vm", "destroy_vm"}
    assert all(n >= 250 for n in r["mix"].values())  # 30 steps per slot: 7 or 8 of each
    assert r["controller_live_records"] == 0
    assert [s["txns_done"] for s in r["slices"]] == [300, 600, 900, 1200]
    for key in ("throughput_last_over_first", "rss_growth_mib", "store_bytes", "cpu_last_over_first"):
        assert r[key] is not None
    assert r["store_bytes"] > 0
    with pytest.raises(InvalidArguments, match="not empty"):
        run_soak(SoakSpec(txns=10, store=uri, hosts=16, slots=4))


def test_the_cli_prints_the_soak_as_json(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    out = CliRunner().invoke(
        app, ["bench", "soak", "--txns", "200", "--hosts", "8", "--store", uri, "--json"]
    )
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["txns"] == 200 and r["store"] == uri and len(r["slices"]) == 20


def test_a_soak_with_retention_keeps_the_store_to_the_policy(tmp_path: Path) -> None:
    import sqlite3

    from tropic.retention import Archive, Retention

    uri = f"sqlite:///{tmp_path / 'r.db'}"
    r = run_soak(
        SoakSpec(txns=1200, store=uri, hosts=16, slots=40, slices=4, workers=2, retain=Retention.parse("300"))
    )
    conn = sqlite3.connect(tmp_path / "r.db")
    try:
        rows = conn.execute("SELECT COUNT(*) FROM txns").fetchone()[0]
    finally:
        conn.close()
    archive = Archive(tmp_path / "r.db.archive")
    archived = [int(x["id"]) for f in archive.files() for x in archive.read(f)]
    assert r["retained_removed"] == len(archived) == len(set(archived)) > 0
    assert rows + len(archived) == 1200  # every record in the store or the archive, once
    assert rows <= 300 + 40  # the policy's count, plus what was in flight at the last pass
