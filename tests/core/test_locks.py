"""Hierarchical locks: a lock covers its subtree; disjoint subtrees never conflict."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tropic.txn import LockSet, LockTable

VM3 = "/compute/r1/h1/vm3"
H1 = "/compute/r1/h1"
H2 = "/compute/r1/h2"


def conflicts(a: LockSet, b: LockSet) -> bool:
    t = LockTable()
    assert t.try_acquire(1, a) is None
    return t.try_acquire(2, b) is not None


def test_spec_examples() -> None:
    w_vm3 = LockSet.from_sets([], [VM3])
    assert conflicts(w_vm3, LockSet.from_sets([], [H1]))
    assert conflicts(w_vm3, LockSet.from_sets([H1], []))
    assert conflicts(LockSet.from_sets([H1], []), w_vm3)
    assert not conflicts(w_vm3, LockSet.from_sets([], [H2]))
    assert not conflicts(w_vm3, LockSet.from_sets([], [f"{H2}/vm3"]))
    assert not conflicts(LockSet.from_sets([H1], []), LockSet.from_sets([H1], []))  # readers share
    assert conflicts(w_vm3, w_vm3)


def test_release_frees_everything() -> None:
    t = LockTable()
    assert t.try_acquire(1, LockSet.from_sets([H1], [VM3, H2])) is None
    assert t.try_acquire(2, LockSet.from_sets([], ["/compute"])) == 1
    t.release(1)
    assert len(t) == 0
    assert t.try_acquire(2, LockSet.from_sets([], ["/compute"])) is None


paths = st.lists(st.sampled_from(["r1", "r2"]), min_size=1, max_size=1).flatmap(
    lambda r: st.sampled_from(
        [f"/c/{r[0]}", f"/c/{r[0]}/h1", f"/c/{r[0]}/h2", f"/c/{r[0]}/h1/v", f"/c/{r[0]}/h2/v"]
    )
)


def related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@given(
    st.lists(paths, max_size=3),
    st.lists(paths, max_size=3),
    st.lists(paths, max_size=3),
    st.lists(paths, max_size=3),
)
def test_conflict_iff_related_paths_with_a_writer(
    r1: list[str], w1: list[str], r2: list[str], w2: list[str]
) -> None:
    a, b = LockSet.from_sets(r1, w1), LockSet.from_sets(r2, w2)
    expected = any(related(x, y) for x in w1 for y in r2 + w2) or any(related(x, y) for x in r1 for y in w2)
    assert conflicts(a, b) == expected
