"""A reload whose device reads go stale (the device's part of the model changed during the read) reads
again under its retry policy, and gives up with ScopeBusy when the scope never settles."""

from __future__ import annotations

import pytest

from reconcile.kit import H1, VM_A, VM_B, World, assert_consistent, world
from tropic.model import STOPPED
from tropic.reconcile import ScopeBusy
from tropic.reconcile.reconciler import RELOAD_RETRY


def busy_host(w: World, monkeypatch: pytest.MonkeyPatch, busy_reads: set[int]) -> list[str]:
    """Make the ``n``-th read of host-01 (for ``n`` in ``busy_reads``) race a change of the model: VM b's
    node is replaced (as a transaction or a reload replaces nodes; same content, so the devices still
    match) while the device is being read. Returns the reads of host-01."""
    reads: list[str] = []
    real = w.sim.reload
    c = w.controller

    def replace_node() -> None:
        c.model.nodes[VM_B] = c.model.nodes[VM_B].copy()

    def reload(path: str) -> object:
        if path == H1:
            reads.append(path)
            if len(reads) in busy_reads:
                c.call(replace_node)
        return real(path)

    monkeypatch.setattr(w.sim, "reload", reload)
    return reads


def test_a_stale_read_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    with world() as w:
        w.sim.crash_vm(VM_A)
        assert len(w.reconciler.drift()) == 1
        # read 1: the scan before the reload; read 2: the reload's first attempt, which goes stale
        reads = busy_host(w, monkeypatch, {2})
        result = w.reconciler.reload(VM_A)
        assert len(reads) == 3
        assert [(d.path, d.attribute) for d in result.changed] == [(VM_A, "state")]
        assert w.model.get(VM_A).state == STOPPED
        assert_consistent(w)


def test_a_scope_that_never_settles_gives_up_after_the_policys_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with world() as w:
        w.sim.crash_vm(VM_A)
        assert len(w.reconciler.drift()) == 1
        reads = busy_host(w, monkeypatch, set(range(1, 100)))
        with pytest.raises(ScopeBusy, match="kept changing"):
            w.reconciler.reload(VM_A)
        assert RELOAD_RETRY.attempts is not None
        assert len(reads) == 1 + RELOAD_RETRY.attempts  # the scan, then every attempt
        assert w.controller.fenced == {VM_A: 0}  # nothing reloaded: the drift stays fenced
