"""How much following the sun *could* gain on a demand: an exhaustive bound over every placement.

The planner and the hourly oracle (:func:`tropic.sun.strategies.oracle_hourly`) search with CP-SAT under a
time limit, so they show what was found, not what exists. This module enumerates **every** placement of
``members`` members over the matrix's regions (members per region at most ``capacity``; every choice of
the leader's region) and evaluates each under the latency model of :mod:`tropic.sun.model`, vectorised
with numpy:

* ``static_ms``: the best placement held for the whole day: the exact static optimum;
* ``bound_ms``: every step in its own best placement, moved for free and at once (no budget, no
  hysteresis, no pre-copy, no election): a lower bound on the mean latency of *any* strategy that
  changes placement at most once a step, whatever its policy;
* ``ceiling``: ``1 - bound_ms / best static``: the largest reduction any such strategy can reach.

Where two member regions are equally near a client the model breaks the tie by the placement's order;
the bound takes the tie's cheapest write instead, so each placement's value here is at most the model's
(equal when no row of the matrix repeats a value), and the bound stays a bound.

The work is ``placements x entry regions x steps``: 32 regions and 5 members make 1.5 million
(placement, leader) pairs, a few seconds. :data:`MAX_PLACEMENTS` refuses what would take hours.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tropic.errors import ConfigError
from tropic.sun.contract import Demand, LatencyMatrix, Placement
from tropic.sun.model import quorum_size

MAX_PLACEMENTS = 20_000_000  # (multiset, leader) pairs enumerated at most
CHUNK = 50_000  # multisets evaluated at once (memory: CHUNK x entry regions x steps floats)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Bound:
    """The exhaustive figures of one demand (see the module docstring)."""

    placements: int  # (members per region, leader region) pairs evaluated
    static_ms: float  # the exact static optimum's mean
    static_placement: Placement
    bound_ms: float  # each step in its own best placement, moved for free
    step_bound_ms: tuple[float, ...]
    read_fraction: float

    def ceiling(self, best_static_ms: float | None = None) -> float:
        """The largest reduction against ``best_static_ms`` (default: the exact static optimum)."""
        best = self.static_ms if best_static_ms is None else best_static_ms
        return 1.0 - self.bound_ms / best if best > 0 else 0.0

    def to_dict(self, best_static_ms: float | None = None) -> dict[str, object]:
        lead = self.static_placement
        return {
            "placements": self.placements,
            "static_optimum_ms": round(self.static_ms, 2),
            "static_optimum": {"members": list(lead.members), "leader": lead.members[lead.leader]},
            "bound_ms": round(self.bound_ms, 2),
            "ceiling_vs_best_static": round(self.ceiling(best_static_ms), 4),
        }


def count_placements(regions: int, members: int, capacity: int) -> int:
    """(multiset, leader region) pairs: what :func:`bound` evaluates."""
    total = 0
    for combo in _multisets(regions, members, capacity):
        total += len(set(combo))
    return total


def _multisets(regions: int, members: int, capacity: int) -> Iterator[tuple[int, ...]]:
    for combo in itertools.combinations_with_replacement(range(regions), members):
        if capacity >= members or max(combo.count(r) for r in set(combo)) <= capacity:
            yield combo


def estimate(regions: int, members: int) -> int:
    return math.comb(regions + members - 1, members) * members


def _entry_demand(demand: Demand, entries: list[str]) -> tuple[F64, F64]:
    """Requests per (step, entry region) and per step: reads and writes share one mass."""
    index = {e: i for i, e in enumerate(entries)}
    mass = np.zeros((len(demand.rate), len(entries)))
    for k, rates in enumerate(demand.rate):
        for client, rate in rates.items():
            mass[k, index[demand.attach[client]]] += rate * demand.step_s
    return mass, mass.sum(axis=1)


def _values(rtt: F64, combos: I64, entries: I64, members: int, read_fraction: float) -> tuple[F64, I64]:
    """Per (multiset, leader position): each entry region's mean request latency (reads and writes mixed),
    and the mask of positions that start a new region (the distinct leader choices)."""
    n_combos = combos.shape[0]
    need = quorum_size(members) - 1
    lead_ok = np.ones((n_combos, members), dtype=bool)
    lead_ok[:, 1:] = combos[:, 1:] != combos[:, :-1]  # sorted: a repeated region is the same leader
    to_member = rtt[entries][:, combos]  # (E, C, n): rtt(entry, member)
    read = to_member.min(axis=2)  # (E, C)
    nearest = to_member <= read[:, :, None]  # (E, C, n): the tied nearest members
    out = np.full((members, len(entries), n_combos), np.inf)
    same_region = combos[:, :, None] == combos[:, None, :]  # (C, n, n)
    for j in range(members):
        lead = combos[:, j]  # (C,)
        lead_rtt = rtt[lead[:, None], combos]  # (C, n): rtt(leader, member)
        if need > 0:
            acks = lead_rtt.copy()
            acks[:, j] = np.inf
            quorum = np.partition(acks, need - 1, axis=1)[:, need - 1]
        else:
            quorum = np.zeros(n_combos)
        alone = same_region[:, j, :].sum(axis=1) == 1  # the leader is its region's only member
        fwd = rtt[combos, lead[:, None]]  # (C, n): rtt(member, leader)
        in_lead = combos == lead[:, None]
        fwd = np.where(in_lead, np.where(alone[:, None], 0.0, rtt[lead, lead][:, None]), fwd)
        fwd_best = np.where(nearest, fwd[None, :, :], np.inf).min(axis=2)  # (E, C)
        write = read + fwd_best + quorum[None, :]
        out[j] = read_fraction * read + (1 - read_fraction) * write
    return out, lead_ok


def bound(matrix: LatencyMatrix, demand: Demand, *, members: int, capacity: int) -> Bound:
    """Enumerate every placement (see the module docstring); a :class:`ConfigError` when the members do
    not fit or the enumeration would exceed :data:`MAX_PLACEMENTS`."""
    regions = list(matrix.regions)
    if members < 1:
        raise ConfigError("the bound needs at least one member")
    if members > len(regions) * capacity:
        raise ConfigError(f"{members} members do not fit: {len(regions)} regions x capacity {capacity}")
    if estimate(len(regions), members) > MAX_PLACEMENTS:
        raise ConfigError(
            f"{members} members over {len(regions)} regions are more than {MAX_PLACEMENTS:,} placements to "
            "enumerate; use --oracle (CP-SAT per hour) instead"
        )
    pos = {r: i for i, r in enumerate(regions)}
    rtt = np.array([[matrix.rtt(a, b) for b in regions] for a in regions])
    entry_names = sorted({demand.attach[c] for c in demand.client_regions}, key=pos.__getitem__)
    entries = np.array([pos[e] for e in entry_names], dtype=np.int64)
    mass, per_step = _entry_demand(demand, entry_names)
    day_mass = mass.sum(axis=0)
    steps = len(demand.rate)
    best_step = np.full(steps, np.inf)
    best_static = (math.inf, (0,) * members, 0)
    evaluated = 0
    combos_iter = _multisets(len(regions), members, capacity)
    while True:
        chunk = list(itertools.islice(combos_iter, CHUNK))
        if not chunk:
            break
        combos = np.array(chunk, dtype=np.int64)
        values, lead_ok = _values(rtt, combos, entries, members, demand.read_fraction)
        evaluated += int(lead_ok.sum())
        for j in range(members):
            v = values[j]  # (E, C)
            ok = lead_ok[:, j]
            step_v = np.where(ok[None, :], mass @ v, np.inf)  # (T, C): latency x requests
            best_step = np.minimum(best_step, step_v.min(axis=1))
            day_v = np.where(ok, day_mass @ v, np.inf)
            c = int(day_v.argmin())
            if day_v[c] < best_static[0]:
                best_static = (float(day_v[c]), chunk[c], j)
    total = float(per_step.sum())
    if total <= 0:
        raise ConfigError("the demand has no requests")
    step_ms = tuple(float(b / m) if m > 0 else 0.0 for b, m in zip(best_step, per_step, strict=True))
    members_at = tuple(regions[r] for r in best_static[1])
    return Bound(
        placements=evaluated,
        static_ms=best_static[0] / total,
        static_placement=Placement(members_at, best_static[2]),
        bound_ms=float(best_step.sum()) / total,
        step_bound_ms=step_ms,
        read_fraction=demand.read_fraction,
    )
