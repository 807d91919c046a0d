"""Fences: resources left behind by a FAILED transaction, or drifted from the model (see
:mod:`tropic.reconcile`), that no transaction may touch until they are reloaded or repaired. The fence
table itself (path -> owner) belongs to the logical thread; this module says who owns a fence and why a
transaction is refused."""

from __future__ import annotations

from collections.abc import Mapping

from tropic.errors import FencedResource
from tropic.txn.locks import LockSet

DRIFT = 0  # the fence owner of drifted resources (transaction ids start at 1)


def fenced_overlap(fenced: Mapping[str, int], locks: LockSet) -> str | None:
    """The first fenced path ``locks`` overlap, if any."""
    if not fenced:
        return None
    for path in fenced:
        if locks.overlaps((path,)):
            return path
    return None


def refusal(path: str, owner: int) -> FencedResource:
    """Why a transaction touching fenced ``path`` (of ``owner``) is refused, naming the path."""
    why = (
        "it drifted: the device no longer matches the model"
        if owner == DRIFT
        else f"left behind by failed transaction {owner}"
    )
    return FencedResource(f"{path} is fenced ({why}); reload or repair it first", path=path)
