"""Small hand-made matrices and demands for the follow-the-sun tests."""

from __future__ import annotations

from tropic.sun.contract import Demand, LatencyMatrix

# Three regions: A and B near each other, C far from both. Not symmetric on purpose (A->C 100, C->A 110).
RTT = {
    "A": {"A": 1.0, "B": 10.0, "C": 100.0},
    "B": {"A": 10.0, "B": 2.0, "C": 90.0},
    "C": {"A": 110.0, "B": 90.0, "C": 1.0},
}
MATRIX = LatencyMatrix(tuple(RTT), RTT)


def demand(rates: list[dict[str, float]], *, step_s: int = 3600, read_fraction: float = 0.9) -> Demand:
    """Client regions named after the matrix regions (attached to themselves)."""
    keys = tuple(sorted({k for r in rates for k in r}))
    return Demand(
        step_s=step_s,
        client_regions=keys,
        attach={k: k for k in keys},
        rate=tuple({k: r.get(k, 0.0) for k in keys} for r in rates),
        read_fraction=read_fraction,
    )
