"""The SQLite store's observation rows behave exactly as the in-process ones, whatever the rows, queries
and retention (a model-based property test)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.store.observations import MemoryObservations, ObservationRow
from tropic.store.sqlite import SQLiteStore

subjects = st.sampled_from(["/c/r1/h1", "/c/r1/h1/a", "/c/r1/h2/b", "/c/r2/h1/c", "region:eu", "region:us"])
rows = st.tuples(
    subjects,
    st.sampled_from(["cpu", "memory", "demand"]),
    st.floats(0, 1, allow_nan=False),
    st.integers(0, 50).map(float),  # few distinct times: many ties
    st.sampled_from(["s", "t"]),
)
queries = st.tuples(
    st.sampled_from(["", "/c/", "/c/r1/", "/c/r1/h1", "region:", "x"]),
    st.one_of(st.none(), st.sampled_from(["cpu", "demand"])),
    st.one_of(st.none(), st.integers(0, 50).map(float)),
    st.integers(1, 30),
)


@settings(max_examples=40)
@given(
    st.lists(st.lists(rows, max_size=15), min_size=1, max_size=5),
    st.lists(queries, min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(0, 50).map(float)),
    st.one_of(st.none(), st.integers(0, 40)),
)
def test_sqlite_rows_match_the_reference(
    batches: list[list[ObservationRow]],
    asked: list[tuple[str, str | None, float | None, int]],
    older_than: float | None,
    max_rows: int | None,
) -> None:
    ref = MemoryObservations()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "store.db")
        try:
            for b in batches:
                ref.append(b)
                store.append_observations(b)
            for prefix, metric, since, limit in asked:
                assert store.observations(prefix, metric, since, None, limit) == ref.query(
                    prefix, metric, since, None, limit
                )
            assert store.trim_observations(older_than, max_rows) == ref.trim(older_than, max_rows)
            assert store.observations(limit=1000) == ref.query("", None, None, None, 1000)
            assert max_rows is None or len(store.observations(limit=1000)) <= max_rows
        finally:
            store.close()
