"""The autopilot's loop in one process: a hot host triggers relief, a plan that would violate a
constraint never reaches a device, oscillating load does not make migrations oscillate, a failed
migration rolls back and the next pass recovers, a stale host is left alone, a policy that times out
or fails leaves the configuration as it is and says why, and an interrupted pass is resumed without
running a step twice. Time is driven by an explicit clock; passes run with ``run_once``."""

from __future__ import annotations

import threading
from typing import Any

from autopilot.loop_helpers import H1, H2, H3, Fixed, Fleet
from core.helpers import assert_invariants
from tropic.autopilot.actuator import ControllerExecutor, step_key
from tropic.autopilot.base import Move, Observation, Plan, PolicyError, Snapshot, SpawnRequest
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.decisions import ACTED, DRY_RUN, ERROR, IDLE
from tropic.autopilot.passes import MemoryPassBook
from tropic.drivers import SimDriver
from tropic.drivers.sim_faults import Fault
from tropic.model.generate import image_path
from tropic.txn import Controller


def hot_fleet(ctl: Controller) -> Fleet:
    """host-01 at 15/16 cores predicted (94% > 90%), host-02 at 4, host-03 at 1."""
    f = Fleet(ctl)
    f.spawn(1, "big", vcpus=8, load=8.0)
    f.spawn(1, "mid", vcpus=4, load=4.0)
    f.spawn(1, "small", vcpus=4, load=3.0)
    f.spawn(2, "other", vcpus=4, load=4.0)
    f.spawn(3, "idle", vcpus=2, load=1.0)
    return f


def test_a_hot_host_sheds_the_smallest_vm_that_relieves_it_to_the_least_loaded_host(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    c = f.coordinator()
    [d] = c.run_once()
    assert d.status == ACTED, d.why
    # 15 cores on 16 CPUs needs 0.6 core shed: "small" (3 cores) suffices; host-03 is the least loaded.
    assert [(s.procedure, s.args, s.state) for s in d.steps] == [
        ("migrate_vm", {"vm": f"{H1}/small", "dest": H3}, "COMMITTED")
    ]
    assert f.host_of("small") == H3 and d.gain > d.cost
    assert d.utilisation[H1] > 0.9 and d.digest
    # The next pass finds nothing hot, and says so.
    [d2] = c.run_once()
    assert d2.status == IDLE and "no host above 90%" in d2.why
    assert_invariants(ctl)


def test_a_hot_reading_triggers_a_pass_without_waiting_for_the_interval(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    c = f.coordinator().start()  # interval 1 h: only the event can cause a pass now
    try:
        c.observe(Observation("/compute/r1/host-02", "cpu", 0.5, f.clock.now))  # cool: no pass
        c.observe(Observation(H1, "cpu", 0.95, f.clock.now))
        assert ctl._wait_until(lambda: len(c.decisions) >= 1, 30)
    finally:
        c.stop()
    [d] = c.decisions.recent()
    assert d.trigger == f"hot:{H1}" and d.status == ACTED
    assert f.host_of("small") == H3


def test_a_plan_that_would_violate_a_constraint_aborts_in_simulation_and_touches_no_device(
    ctl: Controller, sim: SimDriver
) -> None:
    f = hot_fleet(ctl)
    f.spawn(2, "fat", vcpus=1, memory_mib=12288)
    assert ctl.wait(ctl.submit("cordon_host", {"host": H3}), 30).error is None
    calls = sim.calls
    bad = Plan("fixed", moves=(Move(f"{H1}/big", H3), Move(f"{H2}/fat", H1)), gain=10.0, cost=0.1)
    [d] = f.coordinator(Fixed(bad)).run_once()
    assert d.status == ACTED
    assert [s.state for s in d.steps] == ["ABORTED", "ABORTED"]
    assert "cordoned" in d.steps[0].error and "exceeds host memory" in d.steps[1].error
    assert sim.calls == calls  # nothing reached a device
    assert f.host_of("big") == H1 and f.host_of("fat") == H2
    assert_invariants(ctl)


def test_hysteresis_holds_a_plan_whose_gain_does_not_pay_for_its_cost(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    small_gain = Plan("fixed", moves=(Move(f"{H1}/small", H3),), gain=1.0, cost=0.8, why="marginal")
    [d] = f.coordinator(Fixed(small_gain), hysteresis=1.5).run_once()
    assert d.status == IDLE and "below hysteresis" in d.why and not f.migrations()
    [d] = f.coordinator(Fixed(small_gain), hysteresis=1.0).run_once()
    assert d.status == ACTED and f.host_of("small") == H3


def oscillate(ctl: Controller, passes: int, **guards: Any) -> tuple[Coordinator, int]:
    """Host-01's and host-02's own load flip every 5 minutes (12 cores on one, none on the other); VM
    ``w`` (4 cores) makes whichever host it is on hot when that one is loaded: relief moves it across."""
    f = Fleet(ctl)
    f.spawn(1, "a", vcpus=8, load=12.0)
    f.spawn(2, "b", vcpus=8, load=0.0)
    f.spawn(1, "w", vcpus=4, load=4.0)
    assert ctl.wait(ctl.submit("cordon_host", {"host": H3}), 30).error is None
    c = f.coordinator(**guards)
    for step in range(passes):
        f.load["a"], f.load["b"] = (12.0, 0.0) if step % 2 == 0 else (0.0, 12.0)
        c.run_once()
        f.clock.advance(300)
    moved = [t for t in f.migrations() if t.state.value == "COMMITTED"]
    assert all(str(t.args["vm"]).endswith("/w") for t in moved)
    return c, len(moved)


def test_without_guards_such_load_moves_the_vm_on_every_pass(ctl: Controller) -> None:
    c, moved = oscillate(ctl, 8, cooldown_s=0, per_vm_per_day=1000)
    assert not any(d.held for d in c.decisions.recent())
    assert moved == 8


def test_oscillating_load_does_not_make_migrations_oscillate(ctl: Controller) -> None:
    """12 hours of 5-minute passes: the cool-down (1 h) and the daily budget (3 per VM) bound the
    migrations of ``w`` to 3, and each pass says which move it held back and why."""
    c, moved = oscillate(ctl, 144, cooldown_s=3600, per_vm_per_day=3)
    assert 1 <= moved <= 3
    held = " ".join(h for d in c.decisions.recent() for h in d.held)
    assert "cooling down" in held and "daily budget spent (3 migrations in 24 h)" in held
    assert next(d.why for d in c.decisions.recent() if d.held and not d.steps).startswith(
        "every move is held"
    )
    assert_invariants(ctl)


def test_a_failed_migration_rolls_back_and_the_next_pass_recovers(ctl: Controller, sim: SimDriver) -> None:
    f = hot_fleet(ctl)
    sim.inject(Fault(action="migrate", times=1, message="link down"))
    c = f.coordinator(cooldown_s=0)
    [d] = c.run_once()
    assert d.status == ACTED and d.steps[0].state in ("FAILED", "ABORTED"), d.steps
    assert "link down" in d.steps[0].error
    assert f.host_of("small") == H1  # rolled back: still on the hot host
    assert_invariants(ctl)
    f.clock.advance(300)
    [d] = c.run_once()
    assert d.status == ACTED and [s.state for s in d.steps] == ["COMMITTED"]
    assert f.host_of("small") == H3
    assert_invariants(ctl)


def test_a_stale_host_is_left_alone_and_never_chosen(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    f.stale = {H1}
    c = f.coordinator()
    [d] = c.run_once()
    assert d.status == IDLE and "no host above" in d.why and H1 not in d.utilisation
    assert f.host_of("small") == H1
    # Host-03 (the least loaded) stale: relief goes to host-02 instead.
    f.stale = {H3}
    [d] = c.run_once()
    assert d.status == ACTED and d.steps[0].args == {"vm": f"{H1}/small", "dest": H2}


class TimesOut:
    name = "slow"

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        return Plan(self.name, why=f"solver timed out after {time_limit:g} s: the configuration stays")


class Broken:
    name = "broken"

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        raise PolicyError("headroom 1.5 is impossible")


def test_a_policy_that_times_out_or_fails_changes_nothing_and_says_why(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    before = ctl.call(lambda: dict(ctl.model.nodes))
    [d] = f.coordinator(TimesOut()).run_once()
    assert d.status == IDLE and "timed out after 10 s" in d.why
    [d] = f.coordinator(Broken()).run_once()
    assert d.status == ERROR and "headroom 1.5 is impossible" in d.why and "stays as it is" in d.why
    assert ctl.call(lambda: dict(ctl.model.nodes)) == before and not f.migrations()


def test_dry_run_records_what_would_run_and_runs_nothing(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    [d] = f.coordinator(dry_run=True).run_once()
    assert d.status == DRY_RUN and [s.state for s in d.steps] == ["would run"]
    assert d.steps[0].args == {"vm": f"{H1}/small", "dest": H3} and not f.migrations()


def test_an_interrupted_pass_is_resumed_without_running_a_step_twice(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    passes = MemoryPassBook()
    ex = ControllerExecutor(ctl)
    # A leader recorded a two-step pass, submitted the first step, and died.
    steps: list[dict[str, Any]] = [
        {"procedure": "migrate_vm", "args": {"vm": f"{H1}/small", "dest": H3}, "key": step_key("p1", 0)},
        {"procedure": "migrate_vm", "args": {"vm": f"{H1}/mid", "dest": H2}, "key": step_key("p1", 1)},
    ]
    steps[0]["txn"] = ex.submit("migrate_vm", dict(steps[0]["args"]), str(steps[0]["key"]))
    steps[0]["who"] = steps[1]["who"] = "x"
    record = {"id": "p1", "seq": 1.0, "at": f.clock.now, "policy": "hotspot", "digest": "d", "steps": steps}
    passes.put_autopilot_pass({**record, "done": False})
    c = Coordinator(f.snapshot, [], ControllerExecutor(ctl), passes, clock=f.clock)
    [d] = c.resume()
    assert d.trigger == "resume" and [s.state for s in d.steps] == ["COMMITTED", "COMMITTED"]
    assert len(f.migrations()) == 2  # the first step was not submitted again
    assert f.host_of("small") == H3 and f.host_of("mid") == H2
    assert passes.get_autopilot_passes()[0]["done"] is True
    assert c.resume() == []  # nothing left to finish
    assert_invariants(ctl)


def test_a_pass_older_than_the_keys_ttl_resumes_only_its_known_transactions(ctl: Controller) -> None:
    """A step without a recorded transaction may have been submitted under a key that has expired since:
    resubmitting it could run it twice, so a pass older than the keys' TTL drops such steps (the next
    pass plans afresh) and only waits for the transactions it knows."""
    f = hot_fleet(ctl)
    passes = MemoryPassBook()
    ex = ControllerExecutor(ctl)
    steps: list[dict[str, Any]] = [
        {"procedure": "migrate_vm", "args": {"vm": f"{H1}/small", "dest": H3}, "key": step_key("p2", 0)},
        {"procedure": "migrate_vm", "args": {"vm": f"{H1}/mid", "dest": H2}, "key": step_key("p2", 1)},
    ]
    steps[0]["txn"] = ex.submit("migrate_vm", dict(steps[0]["args"]), str(steps[0]["key"]))
    record = {"id": "p2", "seq": 1.0, "at": f.clock.now, "policy": "hotspot", "digest": "d", "steps": steps}
    passes.put_autopilot_pass({**record, "done": False})
    f.clock.now += 3 * 3600.0  # the whole cluster was down for three hours
    c = Coordinator(f.snapshot, [], ControllerExecutor(ctl), passes, clock=f.clock, resume_within=3600.0)
    [d] = c.resume()
    assert [s.state for s in d.steps] == ["COMMITTED", "REFUSED"]
    assert "3.0 h old" in d.steps[1].error and "plans afresh" in d.steps[1].error
    assert "resumed 3.0 h late" in d.why
    assert len(f.migrations()) == 1 and f.host_of("mid") == H1  # the stale step did not run
    assert passes.get_autopilot_passes()[0]["done"] is True
    assert_invariants(ctl)


def test_only_one_pass_runs_at_a_time(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    c = f.coordinator()
    threads = [threading.Thread(target=c.run_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len([t for t in f.migrations() if t.state.value == "COMMITTED"]) == 1


def test_a_step_refused_before_any_transaction_is_final_and_the_pass_goes_on(ctl: Controller) -> None:
    f = hot_fleet(ctl)
    bad = SpawnRequest("Not A Name!", H3, image_path("r1"), 1, 512)  # refused by the argument check
    plan = Plan("fixed", moves=(Move(f"{H1}/small", H3),), spawns=(bad,), gain=5.0, cost=0.1)
    c = f.coordinator(Fixed(plan))
    [d] = c.run_once()
    assert [s.state for s in d.steps] == ["REFUSED", "COMMITTED"] and "Not A Name!" in d.steps[0].error
    assert c.resume() == []  # the pass is done: nothing for the next leader to retry


def test_the_actuators_memories_stay_bounded() -> None:
    """Months of migrations of VMs that come and go: the per-VM memory keeps only the last day's VMs,
    and the executor's key cache its newest keys."""
    from tropic.autopilot import actuator

    m = actuator.Migrations()
    for i in range(5 * actuator.SWEEP_EVERY):
        m.record(f"vm-{i}", at=i * 600.0)  # a new VM every 10 minutes, each migrating once
    assert len(m) <= 144 + actuator.SWEEP_EVERY  # a day of them, plus those since the last sweep
    assert m.since("vm-0", 5 * actuator.SWEEP_EVERY * 600.0) == []

    class Store:
        pass

    class Ctl:
        store = Store()
        n = 0

        def submit(self, *a: object, **k: object) -> object:
            Ctl.n += 1
            return type("T", (), {"id": Ctl.n})()

    ex = actuator.ControllerExecutor(Ctl())  # type: ignore[arg-type]
    for i in range(actuator.SEEN_KEYS + 50):
        ex.submit("migrate_vm", {"vm": f"v{i}", "dest": "/h"}, f"pass-{i}")
    assert len(ex._seen) == actuator.SEEN_KEYS
    newest = f"pass-{actuator.SEEN_KEYS + 49}"
    assert ex.submit("migrate_vm", {"vm": f"v{actuator.SEEN_KEYS + 49}", "dest": "/h"}, newest) == Ctl.n
