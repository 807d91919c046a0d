"""The scale benchmark at a tiny size, and the model it builds."""

from __future__ import annotations

from tropic.model import audit
from tropic.replay.metrics import memory_status
from tropic.replay.scale import ScaleSpec, build_scale_model, run_scale_bench


def test_built_model_is_what_committed_spawns_would_leave() -> None:
    m = build_scale_model(hosts=10, vms=25)
    assert m.count("host") == 10 and m.count("vm") == 25 and m.count("volume") == 25
    assert audit(m) == []
    host = m.nodes["/compute/r0/h0"]
    assert host.attrs["configs"] == ["vm0", "vm1", "vm2"]
    vm = m.nodes["/compute/r0/h0/vm0"]
    assert vm.attrs["volume"] in host.attrs["volumes"] and vm.attrs["volume"] in m.nodes


def test_tiny_scale_bench_reports_ratio_and_memory() -> None:
    spec = ScaleSpec(hosts=40, vms=320, baseline_vms=80, txns=60, latency_txns=30, rate=2000.0)
    r = run_scale_bench(spec)
    assert r["scale"]["vms"] == 320 and r["baseline"]["vms"] == 80 and r["target_hosts"] == 10
    assert r["scale"]["committed"] == r["baseline"]["committed"] == 90
    assert r["ratio"] is not None and r["ratio"] > 0
    assert r["scale"]["build_s"] >= 0 and r["scale"]["resources"] > r["baseline"]["resources"]
    assert memory_status()["peak_rss_gib"] > 0
