"""Drift, repair and reload through the real libvirt API (its built-in test hypervisor, one per host): a
domain shut down behind tropic's back is found, restarted by repair, and accepted by reload."""

from __future__ import annotations

import pytest

from tropic.reconcile import Reconciler
from tropic.txn import Controller, State

pytest.importorskip("libvirt", reason="libvirt-python is not installed")

HOST = "/compute/us-east/host-01"
VM = f"{HOST}/w1"


def test_drift_repair_and_reload_on_libvirt() -> None:
    from tropic.scenario.demo import open_demo_driver

    model, driver = open_demo_driver("libvirt", 0.0)
    with Controller(model, driver) as c:
        args = {"host": HOST, "name": "w1", "image": "/storage/us-east/san-1/img-ubuntu"}
        t = c.wait(c.submit("spawn_vm", {**args, "vcpus": 1, "memory_mib": 512}), 60)
        assert t.state is State.COMMITTED, t.error
        rec = Reconciler(c)
        try:
            assert rec.drift() == []
            driver.stop(VM, {})  # out of band: not a transaction
            assert [(d.path, d.attribute, d.physical) for d in rec.drift()] == [(VM, "state", "stopped")]
            result = rec.repair(HOST)
            assert result.consistent and [x["procedure"] for x in result.transactions] == ["restore_vm_state"]
            driver.stop(VM, {})
            assert rec.drift(VM) != [] and rec.reload(VM).unfenced == [VM]
            assert c.model.nodes[VM].attrs["state"] == "stopped"
            assert rec.drift() == [] and c.fenced == {}
            assert c.check()["consistent"]
        finally:
            rec.close()
