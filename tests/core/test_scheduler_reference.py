"""The scheduler's incremental structures change its cost, not its decisions.

On random workloads (random procedures, hence random lock sets, constraint failures and transactions that
wait for older deferred ones; random arrivals, completions, rollbacks, fences left behind and kills), the
scheduler and :class:`~tropic.txn.reference.ReferenceScheduler` (the admission decision computed the plain
way at every look) make the same decisions in the same order: every state change, with whom a deferred
transaction waits for and how often it was deferred. The lock table's indexed conflict lookup names the
same blocker as the plain scan of a path's holders.
"""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from core.helpers import image_path, small_dc
from tropic.model import Model
from tropic.records.states import State
from tropic.txn import LockSet, LockTable
from tropic.txn.reference import ReferenceScheduler, SchedulerRig, plain_lock_set
from tropic.txn.scheduler import Scheduler

REGIONS = ("r1", "r2")
NAMES = [f"v{i}" for i in range(6)]


def host(region: str, n: int) -> str:
    return f"/compute/{region}/host-{n:02d}"


H1 = host("r1", 1)


def model() -> Model:
    # Small hosts: spawns and migrations run into the memory constraint, and the names collide.
    return small_dc(hosts=2, memory_mib=6144, regions=REGIONS)


region = st.sampled_from(REGIONS)
call = st.one_of(
    st.builds(
        lambda r, h, name, mem: (
            "spawn_vm",
            {"host": host(r, h), "name": name, "image": image_path(r), "vcpus": 1, "memory_mib": mem},
        ),
        region,
        st.integers(1, 2),
        st.sampled_from(NAMES),
        st.sampled_from([1024, 2048, 4096]),
    ),
    st.builds(
        lambda r, name, h: ("migrate_vm", {"vm": f"{r}/{name}", "dest": host(r, h)}),
        region,
        st.sampled_from(NAMES),
        st.integers(1, 2),
    ),
    # Without a destination the choice reads the whole region: a region-wide read lock.
    st.builds(lambda r, name: ("migrate_vm", {"vm": f"{r}/{name}"}), region, st.sampled_from(NAMES)),
    st.builds(lambda r, name: ("destroy_vm", {"vm": f"{r}/{name}"}), region, st.sampled_from(NAMES)),
    # By path: an unknown VM on a host an older deferred spawn reserves waits for it.
    st.builds(
        lambda r, h, name: ("destroy_vm", {"vm": f"{host(r, h)}/{name}"}),
        region,
        st.integers(1, 2),
        st.sampled_from(NAMES),
    ),
    st.builds(
        lambda r, name, mem: ("resize_vm", {"vm": f"{r}/{name}", "vcpus": 1, "memory_mib": mem}),
        region,
        st.sampled_from(NAMES),
        st.sampled_from([512, 3072]),
    ),
)
submit = st.tuples(st.just("submit"), st.lists(call, min_size=1, max_size=8))
op = st.one_of(
    submit,
    submit,  # twice as likely: queues build up
    st.tuples(st.just("schedule")),
    st.tuples(st.just("finish"), st.integers(0, 5)),
    st.tuples(st.just("fail"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("kill"), st.integers(0, 40)),
)


def run(scheduler: type[Scheduler], ops: list[tuple[Any, ...]]) -> SchedulerRig:
    rig = SchedulerRig(model(), scheduler)
    for o in ops:
        if o[0] == "submit":
            for procedure, args in o[1]:
                rig.submit(procedure, args)
        elif o[0] == "schedule":
            rig.schedule()
        elif o[0] in ("finish", "fail"):
            running = rig.running()
            if running:
                t = running[o[1] % len(running)]
                if o[0] == "finish":
                    rig.finish(t)
                else:  # rolled back; with o[2] an undo failed and left its first write behind (fenced)
                    rig.finish(t, failed=True, left_behind=sorted(t.writes)[:1] if o[2] else ())
        else:
            queued = [t for t in rig.txns if t.state in (State.SUBMITTED, State.DEFERRED)]
            if queued:
                rig.kill(queued[o[1] % len(queued)])
    # Drain: every worker finishes, oldest first, until nothing is queued.
    for _ in range(10_000):
        if rig.idle:
            break
        rig.schedule()
        for t in rig.running()[:2]:
            rig.finish(t)
    assert rig.idle
    return rig


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40))
def test_same_decisions_as_the_reference(ops: list[tuple[Any, ...]]) -> None:
    new, ref = run(Scheduler, ops), run(ReferenceScheduler, ops)
    deferrals = sum(t.deferrals for t in new.txns)
    target(float(deferrals), label="deferrals")  # steer towards long queues
    event("deferred" if deferrals else "no deferral")
    assert new.decisions == ref.decisions
    assert [t.error for t in new.txns] == [t.error for t in ref.txns]
    assert new.scheduler.model.nodes.keys() == ref.scheduler.model.nodes.keys()
    assert len(new.scheduler.locks) == 0 and len(new.scheduler.reserved) == 0


def test_workloads_exercise_deferral_and_waiting_for_older() -> None:
    """The decisions compared are not trivial: a conflicting backlog defers, and a destroy of a VM whose
    spawn is still deferred waits for it (the failed-simulation path) instead of aborting."""
    spawn = ("spawn_vm", {"host": host("r1", 1), "name": "a", "image": image_path("r1"), "vcpus": 1})
    ops: list[tuple[Any, ...]] = [
        ("submit", [(spawn[0], {**spawn[1], "name": "first", "memory_mib": 1024})]),
        ("schedule",),
        (
            "submit",
            [(spawn[0], {**spawn[1], "memory_mib": 1024}), ("destroy_vm", {"vm": host("r1", 1) + "/a"})],
        ),
        ("schedule",),
    ]
    for scheduler in (Scheduler, ReferenceScheduler):
        rig = run(scheduler, ops)
        first, spawned, destroyed = rig.txns
        assert spawned.deferrals == 1 and spawned.blocked_by == first.id
        assert destroyed.deferrals >= 1 and destroyed.state is State.COMMITTED
    assert run(Scheduler, ops).decisions == run(ReferenceScheduler, ops).decisions


paths = st.sampled_from(
    ["/", "/c", "/c/r1", "/c/r1/h1", "/c/r1/h2", "/c/r1/h1/v", "/c/r1/h2/v", "/c/r2", "/c/r2/h1"]
)
lock_sets = st.builds(plain_lock_set, st.lists(paths, max_size=3), st.lists(paths, max_size=2))


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("force"), st.integers(1, 12), lock_sets),
            st.tuples(st.just("release"), st.integers(1, 12)),
            st.tuples(st.just("ask"), st.integers(1, 12), lock_sets, st.booleans()),
        ),
        max_size=60,
    )
)
def test_indexed_conflict_names_the_scanned_blocker(ops: list[tuple[Any, ...]]) -> None:
    table = LockTable()
    for o in ops:
        if o[0] == "force":
            table.force(o[1], o[2].requests())
        elif o[0] == "release":
            table.release(o[1])
        else:
            wanted = o[2].requests()
            before = o[1] if o[3] else None
            assert table.conflict(o[1], wanted, before=before) == table.conflict_by_scan(
                o[1], wanted, before=before
            )
        assert table.oldest() == min(table.holders(), default=None)


@given(st.lists(paths, max_size=6), st.lists(paths, max_size=4))
def test_lock_set_is_the_plain_minimal_cover(reads: list[str], writes: list[str]) -> None:
    fast, plain = LockSet.from_sets(reads, writes), plain_lock_set(reads, writes)
    assert fast == plain
    assert list(fast.requests().items()) == list(plain.requests().items())


def test_a_failed_simulation_naming_a_vm_by_name_does_not_hang() -> None:
    """A migration of a VM given by name (``scope/name``) to the host it runs on fails with the name as its
    path. With an older transaction deferred, the scheduler builds the failed simulation's lock set: the
    name is not a tree path and is left out (taking its "ancestors" never reached the root: the logical
    thread spun for ever). What it did read conflicts with no older reservation: it aborts, naming the VM."""
    done: list[SchedulerRig] = []

    def scenario() -> None:
        for scheduler in (Scheduler, ReferenceScheduler):
            rig = SchedulerRig(model(), scheduler)
            spawn = {"host": H1, "image": image_path("r1"), "vcpus": 1, "memory_mib": 1024}
            first = rig.submit("spawn_vm", {**spawn, "name": "first"})
            later = rig.submit("spawn_vm", {**spawn, "name": "later"})
            rig.schedule()  # first runs (holds host-01), later is deferred behind it
            move = rig.submit("migrate_vm", {"vm": "r1/first", "dest": H1})
            rig.schedule()
            assert later.state is State.DEFERRED and move.state is State.ABORTED
            while not rig.idle:
                for t in rig.running():
                    rig.finish(t)
                rig.schedule()
            assert first.state is State.COMMITTED and later.state is State.COMMITTED
            assert move.state is State.ABORTED and move.error is not None
            assert move.error["path"] == "r1/first"
            done.append(rig)

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the scheduler hung on a failed simulation naming a VM by name"
    assert len(done) == 2 and done[0].decisions == done[1].decisions
