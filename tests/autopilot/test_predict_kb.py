"""The knowledge base (windows in memory, rows in the store, retention, a restart) and the predictor
(moving percentile, stale marking, the snapshot a policy sees)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.autopilot.base import CPU, Observation
from tropic.autopilot.kb import KnowledgeBase, Retention
from tropic.autopilot.predict import Predictor, PredictorConfig, moving_percentile, snapshot
from tropic.autopilot.sensors import UtilisationSensor
from tropic.autopilot.traces import TracePlayer, load_planetlab, sample_path
from tropic.drivers import SimDriver
from tropic.errors import ConfigError
from tropic.model import Model
from tropic.store.base import MemoryStore
from tropic.store.sqlite import SQLiteStore

H1 = "/compute/r1/host-01"
values = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40)


@given(values, st.floats(0.0, 100.0))
def test_a_percentile_lies_within_the_window(xs: list[float], p: float) -> None:
    v = moving_percentile(xs, p)
    assert min(xs) <= v <= max(xs)
    assert moving_percentile(xs, 0.0) == min(xs) and moving_percentile(xs, 100.0) == max(xs)


@given(values, st.floats(0.0, 100.0), st.floats(0.0, 100.0))
def test_a_higher_percentile_is_never_lower(xs: list[float], p: float, q: float) -> None:
    lo, hi = sorted((p, q))
    assert moving_percentile(xs, lo) <= moving_percentile(xs, hi) + 1e-12


@given(
    st.lists(st.tuples(st.floats(0, 10_000), st.floats(0.0, 1.0)), min_size=1, max_size=30),
    st.floats(0, 20_000),
)
def test_stale_exactly_when_the_newest_reading_is_too_old(
    readings: list[tuple[float, float]], now: float
) -> None:
    kb = KnowledgeBase(MemoryStore(), Retention(window=50))
    kb.record([Observation("vm", CPU, v, at) for at, v in readings], now=0.0)
    p = Predictor(PredictorConfig(percentile=90, samples=12, stale_after_s=900)).predict(kb, "vm", CPU, now)
    newest = max(at for at, _ in readings)
    assert p.at == newest and p.stale == (now - newest > 900)
    window = [v for _, v in sorted(readings)[-12:]]
    assert p.value is not None and min(window) <= p.value <= max(window)


def test_a_subject_without_readings_is_stale_and_unknown() -> None:
    p = Predictor().predict(KnowledgeBase(MemoryStore()), "vm", CPU, 0.0)
    assert p.stale and p.value is None and p.samples == 0


def test_bad_predictor_and_retention_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="percentile"):
        PredictorConfig(percentile=120)
    with pytest.raises(ConfigError, match="samples"):
        PredictorConfig(samples=0)
    with pytest.raises(ConfigError, match="max_rows"):
        Retention(max_rows=0)


def test_the_snapshot_predicts_demand_in_cores_and_leaves_stale_hosts_alone(
    fleet: tuple[Model, SimDriver],
) -> None:
    model, sim = fleet
    sim.utilisation = TracePlayer(load_planetlab(sample_path()), start=0.0)
    kb = KnowledgeBase(MemoryStore())
    sensor = UtilisationSensor(sim, lambda: model)
    for k in range(12):
        kb.record(sensor.read(k * 300.0), now=k * 300.0)
    now = 11 * 300.0
    snap = snapshot(model, kb, now)
    a = snap.vms[f"{H1}/a"]
    series = [v for _, v in kb.series(a.path, CPU)]
    assert a.demand == pytest.approx(moving_percentile(series, 90) * 2)  # p90 x its 2 vCPUs
    assert snap.stale == frozenset()
    assert snap.hosts[H1].vms == (f"{H1}/a", f"{H1}/b") and snap.hosts[H1].powered is True
    assert snap.hosts[H1].region == "r1" and snap.hosts[H1].cpus == 16
    # The sensor stops reading one VM (its device went silent): 16 minutes later it and its host are stale.
    later = now + 960
    kb.record(
        [o for o in sensor.read(later) if not o.subject.startswith(f"{H1}/a") and o.subject != H1], later
    )
    snap = snapshot(model, kb, later)
    assert snap.vms[f"{H1}/a"].demand is None
    assert snap.stale == {f"{H1}/a", H1}
    assert snap.vms[f"{H1}/b"].demand is not None


def test_the_knowledge_base_is_bounded_and_survives_a_restart(tmp_path: Path) -> None:
    retention = Retention(max_age_s=3_600, max_rows=500, trim_every_s=0, window=5)
    store = SQLiteStore(tmp_path / "store.db")
    kb = KnowledgeBase(store, retention)
    for k in range(100):  # a stream: 10 subjects every minute for 100 minutes
        now = k * 60.0
        kb.record([Observation(f"/vm-{i}", CPU, (k + i) % 10 / 10, now, "t") for i in range(10)], now)
        assert len(store.observations(limit=100_000)) <= 500
        assert len(kb.series("/vm-0", CPU)) <= 5
    kept = store.observations(limit=100_000)
    assert min(r[3] for r in kept) >= 99 * 60.0 - 3_600 and kb.removed == 1000 - len(kept)
    store.close()
    reopened = SQLiteStore(tmp_path / "store.db")
    try:
        again = KnowledgeBase(reopened, retention)
        assert again.load(now=99 * 60.0) == len(kept)
        assert again.series("/vm-3", CPU) == kb.series("/vm-3", CPU)  # the predictor resumes where it was
        assert [o.value for o in again.query("/vm-3", CPU, limit=2)] == [
            v for _, v in kb.series("/vm-3", CPU)[-2:]
        ]
    finally:
        reopened.close()


def test_late_readings_keep_the_window_in_time_order() -> None:
    kb = KnowledgeBase(MemoryStore(), Retention(window=3))
    kb.record([Observation("s", CPU, 0.1, 10.0), Observation("s", CPU, 0.3, 30.0)], 30.0)
    kb.record([Observation("s", CPU, 0.2, 20.0), Observation("s", CPU, 0.4, 40.0)], 40.0)
    assert kb.series("s", CPU) == [(20.0, 0.2), (30.0, 0.3), (40.0, 0.4)]


def test_series_of_subjects_that_are_gone_leave_memory() -> None:
    """Churn (each VM read for a while, then destroyed or moved to another path): the in-memory windows
    hold the subjects read within the retention age, not every subject ever read."""
    retention = Retention(max_age_s=3_600, max_rows=100_000, trim_every_s=0, window=5)
    kb = KnowledgeBase(MemoryStore(), retention)
    for k in range(500):  # a new subject every minute, each read for 10 minutes
        now = k * 60.0
        kb.record([Observation(f"/vm-{j}", CPU, 0.5, now, "t") for j in range(max(0, k - 9), k + 1)], now)
    assert len(kb.subjects(CPU)) <= 60 + 10  # an hour of them
    assert kb.series("/vm-0", CPU) == []
