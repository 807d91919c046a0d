"""The periodic reconciler: a VM crash is detected within one reconcile interval and resolved by the policy
of its kind (restart it, or mark it stopped); drift under a REPORT policy, or left by a FAILED transaction,
waits for an operator."""

from __future__ import annotations

import time

import pytest

from core.helpers import spawn
from reconcile.kit import H1, VM_A, VM_B, VOL_A, assert_consistent, world
from tropic.drivers import Fault
from tropic.errors import ConfigError
from tropic.model import RUNNING, STOPPED
from tropic.reconcile import Policies, Policy
from tropic.txn import State

INTERVAL = 0.3


def resolved(history: list[dict[str, object]], path: str) -> dict[str, object] | None:
    return next((h for h in history if h["path"] == path and h["how"] != "vanished"), None)


@pytest.mark.parametrize(
    ("policy", "model_state", "procedure"),
    [(Policy.REPAIR, RUNNING, "restore_vm_state"), (Policy.RELOAD, STOPPED, None)],
)
def test_vm_crash_detected_within_one_interval_and_resolved_by_policy(
    policy: Policy, model_state: str, procedure: str | None
) -> None:
    with world(interval=INTERVAL, policies=Policies(rules={"vm": policy})) as w:
        rec = w.reconciler.start()
        assert rec.wait_until(lambda: rec.passes_done >= 1, 30)
        started_before = rec.passes_started
        crashed_at = time.time()
        w.sim.crash_vm(VM_A)
        assert rec.wait_until(lambda: resolved(list(rec.history), VM_A) is not None, 30)
        h = resolved(list(rec.history), VM_A)
        assert h is not None
        # Detected by the first pass that began after the crash (at most one interval later), or by the
        # pass already running when it happened.
        assert int(h["seen_in_pass"]) <= started_before + 1  # type: ignore[call-overload]
        assert float(h["first_seen"]) >= crashed_at  # type: ignore[arg-type]
        assert h["how"] == policy.value
        assert (h["attribute"], h["logical"], h["physical"]) == ("state", "running", "stopped")
        rec.stop()
        assert w.model.get(VM_A).state == model_state
        assert w.sim.inventory()["hosts"][H1]["vms"]["a"]["state"] == model_state
        repairs = [t for t in w.controller.transactions() if t.submitter == "reconciler"]
        if procedure is None:
            assert repairs == []  # reload changes the model only: no device was touched
        else:
            assert [(t.procedure, t.args, t.state) for t in repairs] == [
                (procedure, {"vm": VM_A}, State.COMMITTED)
            ]
            assert [s.action for s in repairs[0].steps] == ["stop", "start"]
        assert_consistent(w)


def test_host_reboot_restarts_every_vm_and_reports_the_rest() -> None:
    policies = Policies.parse("vm=repair,*=report")
    with world(interval=INTERVAL, policies=policies) as w:
        rec = w.reconciler.start()
        w.sim.reboot_host(H1)
        w.sim.drop_volume(VOL_A)
        assert rec.wait_until(
            lambda: (
                all(resolved(list(rec.history), p) for p in (VM_A, VM_B)) and VOL_A in w.controller.fenced
            ),
            30,
        )
        assert w.sim.inventory()["hosts"][H1]["vms"]["a"]["state"] == RUNNING
        # The volume's policy is report: it stays fenced, and a destroy that touches it is refused.
        rec.stop()
        assert [d.key for d in rec.records()] == [(VOL_A, "exists")]
        t = w.controller.wait(w.controller.submit("destroy_vm", {"vm": VM_A}), 30)
        assert t.state is State.ABORTED and t.error is not None and t.error["path"] == VOL_A
        result = rec.repair(VOL_A)
        assert result.consistent and [x["procedure"] for x in result.transactions] == ["recreate_volume"]
        assert w.controller.wait(w.controller.submit("destroy_vm", {"vm": VM_A}), 30).state is State.COMMITTED
        assert_consistent(w)


def test_leftovers_of_a_failed_transaction_wait_for_an_operator() -> None:
    with world(interval=INTERVAL, policies=Policies(default=Policy.REPAIR)) as w:
        w.sim.inject(Fault(action="create_vm"))
        w.sim.inject(Fault(action="delete_volume", undo=True))
        t = w.controller.wait(w.controller.submit("spawn_vm", spawn("r1", 2, "bad")), 30)
        assert t.state is State.FAILED
        w.sim.clear_faults()
        rec = w.reconciler.start()
        done = rec.passes_done
        assert rec.wait_until(lambda: rec.passes_done >= done + 3, 30)
        (d,) = rec.records()
        assert d.fenced_by == t.id and d.auto_attempts == 0
        assert [x.submitter for x in w.controller.transactions()].count("reconciler") == 0


def test_policies_parse_and_refuse_nonsense() -> None:
    p = Policies.parse("vm=repair, volume.exported=reload, *=report")
    assert p.of("vm", "state") is Policy.REPAIR
    assert p.of("volume", "exported") is Policy.RELOAD
    assert p.of("volume", "exists") is Policy.REPORT
    assert p.to_dict() == {"*": "report", "vm": "repair", "volume.exported": "reload"}
    with pytest.raises(ConfigError, match="KIND"):
        Policies.parse("vm=restart")
    with pytest.raises(ConfigError, match="KIND"):
        Policies.parse("vm")
