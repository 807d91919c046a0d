"""Cordon as a constraint: no new placement on a cordoned host (spawn or migrate onto it aborts in
simulation with ``Host.cordon_respected`` and the host's path), while the VMs already there may stay or
leave; cordon and uncordon are model-only actions (logged, locked, never sent to a device)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.helpers import assert_invariants, small_dc, spawn, vm
from tropic.drivers import SimDriver
from tropic.model import MODEL_ONLY_ACTIONS, STANDARD, Host, audit, project
from tropic.txn import Controller, State, Transaction

H1, H2 = "/compute/r1/host-01", "/compute/r1/host-02"


def run(c: Controller, procedure: str, args: dict[str, object]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def cordoned(c: Controller, host: str) -> bool:
    return bool(c.call(lambda: c.model.reader().get(host, Host).cordoned))


def test_cordon_is_a_model_only_action_and_no_driver_needs_it() -> None:
    assert {"cordon", "uncordon"} <= MODEL_ONLY_ACTIONS
    assert "cordon" not in STANDARD.actions() and "migrate" in STANDARD.actions()


def test_spawn_and_migrate_onto_a_cordoned_host_abort_with_the_constraint(
    ctl: Controller, sim: SimDriver
) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "old")).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r1", 2, "other")).state is State.COMMITTED
    calls = sim.calls
    t = run(ctl, "cordon_host", {"host": H1})
    assert t.state is State.COMMITTED, t.error
    assert [a.action for a in t.actions] == ["cordon"]
    assert sim.calls == calls  # nothing reached a device
    assert [s.status for s in t.steps] == ["done"]
    assert cordoned(ctl, H1)

    t = run(ctl, "spawn_vm", spawn("r1", 1, "new"))
    assert t.state is State.ABORTED
    assert t.violation is not None and t.violation.constraint == "Host.cordon_respected"
    assert t.violation.path == H1 and "new" in t.violation.message
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 2, "other"), "dest": H1})
    assert t.state is State.ABORTED and t.violation is not None
    assert t.violation.constraint == "Host.cordon_respected"

    # The VM already there may be resized, stopped, and leave; once gone it may not come back.
    t = run(ctl, "resize_vm", {"vm": vm("r1", 1, "old"), "vcpus": 2, "memory_mib": 2048})
    assert t.state is State.COMMITTED
    assert run(ctl, "migrate_vm", {"vm": vm("r1", 1, "old"), "dest": H2}).state is State.COMMITTED
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 2, "old"), "dest": H1})
    assert t.state is State.ABORTED and t.violation is not None

    assert run(ctl, "uncordon_host", {"host": H1}).state is State.COMMITTED
    assert not cordoned(ctl, H1)
    assert run(ctl, "migrate_vm", {"vm": vm("r1", 2, "old"), "dest": H1}).state is State.COMMITTED
    assert_invariants(ctl)


def test_cordon_twice_and_uncordon_an_uncordoned_host_are_clear_errors(ctl: Controller) -> None:
    t = run(ctl, "uncordon_host", {"host": H1})
    assert t.state is State.ABORTED and t.error is not None and "is not cordoned" in t.error["message"]
    assert run(ctl, "cordon_host", {"host": H1}).state is State.COMMITTED
    t = run(ctl, "cordon_host", {"host": H1})
    assert t.state is State.ABORTED and t.error is not None and "already cordoned" in t.error["message"]
    t = run(ctl, "cordon_host", {"host": "/compute/r1/nope"})
    assert t.state is State.ABORTED and t.error is not None and t.error["path"] == "/compute/r1/nope"
    assert_invariants(ctl)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["spawn", "migrate", "cordon", "uncordon", "destroy"]),
            st.integers(1, 3),
            st.integers(0, 4),
        ),
        max_size=14,
    )
)
def test_no_vm_ever_arrives_on_a_cordoned_host(ops: list[tuple[str, int, int]]) -> None:
    """Whatever the sequence, a VM on a cordoned host was there when it was cordoned, and the model
    always satisfies every constraint and matches the devices."""
    model = small_dc()
    sim = SimDriver(seed=1)
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        where: dict[str, int] = {}  # VM name -> host number, as committed
        at_cordon: dict[int, set[str]] = {}
        for op, h, n in ops:
            name, host = f"v{n}", f"/compute/r1/host-{h:02d}"
            if op == "spawn" and name not in where:
                t = run(c, "spawn_vm", spawn("r1", h, name))
                ok = h not in at_cordon
                assert (t.state is State.COMMITTED) == ok, t.error
                if ok:
                    where[name] = h
            elif op == "migrate" and name in where and where[name] != h:
                t = run(c, "migrate_vm", {"vm": vm("r1", where[name], name), "dest": host})
                ok = h not in at_cordon or name in at_cordon[h]
                assert (t.state is State.COMMITTED) == ok, t.error
                if ok:
                    if where[name] in at_cordon:
                        at_cordon[where[name]].discard(name)
                    where[name] = h
            elif op == "cordon":
                t = run(c, "cordon_host", {"host": host})
                assert (t.state is State.COMMITTED) == (h not in at_cordon)
                at_cordon.setdefault(h, {v for v, x in where.items() if x == h})
            elif op == "uncordon":
                t = run(c, "uncordon_host", {"host": host})
                assert (t.state is State.COMMITTED) == (h in at_cordon)
                at_cordon.pop(h, None)
            elif op == "destroy" and name in where:
                assert run(c, "destroy_vm", {"vm": vm("r1", where[name], name)}).state is State.COMMITTED
                at_cordon.get(where.pop(name), set()).discard(name)
        for h, allowed in at_cordon.items():
            assert cordoned(c, f"/compute/r1/host-{h:02d}")
            assert {v for v, x in where.items() if x == h} <= allowed
        assert audit(c.model) == []
        assert_invariants(c)
    finally:
        c.stop()
