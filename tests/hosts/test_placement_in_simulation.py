"""spawn_vm without host and migrate_vm without dest choose the host during simulation: best fit among
the hosts of the region that are not cordoned and can take the VM, read-locked like every read, and a
clear count of why no host fits when none does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.helpers import assert_invariants, small_dc, spawn, vm
from tropic.drivers import SimDriver
from tropic.model import Host, audit, project
from tropic.model.fit import Candidate, choose, why_none
from tropic.scenario import image_path
from tropic.txn import Controller, State, Transaction

H1, H2, H3 = (f"/compute/r1/host-0{i}" for i in (1, 2, 3))


def run(c: Controller, procedure: str, args: dict[str, object]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def anywhere(name: str, *, region: str = "r1", memory_mib: int = 2048, vcpus: int = 1) -> dict[str, object]:
    return {
        "name": name,
        "image": image_path("r1"),
        "vcpus": vcpus,
        "memory_mib": memory_mib,
        "region": region,
    }


def host_of(t: Transaction) -> str:
    create = [a for a in t.actions if a.action in ("create_vm", "migrate")]
    assert create, t.actions
    a = create[-1]
    return a.path if a.action == "create_vm" else str(a.args["dest"])


def test_spawn_without_host_picks_the_best_fit_and_locks_the_region(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 2, "seed", memory_mib=8192)).state is State.COMMITTED
    t = run(ctl, "spawn_vm", anywhere("a"))
    assert t.state is State.COMMITTED, t.error
    assert host_of(t) == H2  # the fullest host that still fits (best fit)
    assert "/compute/r1" in t.reads
    t = run(ctl, "spawn_vm", anywhere("b", memory_mib=12288))
    assert t.state is State.COMMITTED and host_of(t) == H1  # host-02 has 6 GiB left: first empty host
    assert_invariants(ctl)


def test_cordoned_hosts_are_skipped_and_the_refusal_counts_why(ctl: Controller) -> None:
    assert run(ctl, "cordon_host", {"host": H1}).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r1", 2, "x", memory_mib=15000)).state is State.COMMITTED
    t = run(ctl, "spawn_vm", anywhere("y", memory_mib=4096))
    assert t.state is State.COMMITTED and host_of(t) == H3
    t = run(ctl, "spawn_vm", anywhere("z", memory_mib=14000))
    assert t.state is State.ABORTED and t.error is not None
    assert t.error["code"] == "no_host_fits" and t.error["path"] == "/compute/r1"
    assert t.error["message"] == (
        "no host in /compute/r1 fits 1 vCPUs/14000 MiB: 1 cordoned, 2 without memory (largest free 12288 MiB)"
    )
    assert_invariants(ctl)


def test_host_given_works_as_before_and_host_with_region_is_refused(ctl: Controller) -> None:
    t = run(ctl, "spawn_vm", spawn("r1", 3, "p"))
    assert t.state is State.COMMITTED and host_of(t) == H3
    assert "/compute/r1" not in t.reads
    t = run(ctl, "spawn_vm", {**spawn("r1", 3, "q"), "region": "r1"})
    assert t.state is State.ABORTED and t.error is not None and "not both" in t.error["message"]
    t = run(ctl, "spawn_vm", anywhere("q", region="mars"))
    assert t.state is State.ABORTED and t.error is not None and t.error["path"] == "/compute/mars"


def test_migrate_without_dest_moves_within_the_region_never_to_the_source(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "m", memory_mib=4096)).state is State.COMMITTED
    assert run(ctl, "spawn_vm", spawn("r1", 3, "filler", memory_mib=8192)).state is State.COMMITTED
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 1, "m")})
    assert t.state is State.COMMITTED, t.error
    assert host_of(t) == H3  # best fit, in r1, not the source
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 3, "m"), "region": "r2"})
    assert t.state is State.COMMITTED and host_of(t).startswith("/compute/r2/")
    for h in (H1, H2, H3):
        assert run(ctl, "cordon_host", {"host": h}).state is State.COMMITTED
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 3, "filler")})
    assert t.state is State.ABORTED and t.error is not None
    assert t.error["message"] == (f"no host in /compute/r1 other than {H3} fits 1 vCPUs/8192 MiB: 2 cordoned")
    assert_invariants(ctl)


def test_the_fit_rule_counts_each_reason() -> None:
    cands = [
        Candidate("/h/a", 4, 1024, cordoned=True),
        Candidate("/h/b", 4, 512),
        Candidate("/h/c", 1, 9000),
        Candidate("/h/d", 8, 4096),
    ]
    assert choose(cands, 2, 2048) == cands[3]
    assert choose(cands, 2, 8000) is None
    assert why_none(cands, 2, 8000, "in /h") == (
        "no host in /h fits 2 vCPUs/8000 MiB: 1 cordoned, 2 without memory (largest free 4096 MiB), "
        "1 without vCPUs (largest free 1)"
    )
    assert why_none([], 1, 1, "in /x") == "no host in /x fits 1 vCPUs/1 MiB: there is no candidate host"


@given(st.lists(st.tuples(st.integers(1, 8), st.sampled_from([512, 2048, 4096, 8192])), max_size=12))
def test_chosen_placements_never_break_a_constraint(sizes: list[tuple[int, int]]) -> None:
    """Whatever arrives, a spawn without host commits exactly when some host can take it, and the model
    then satisfies every constraint (capacity, cordon)."""
    model = small_dc(memory_mib=16384)
    sim = SimDriver(seed=1)
    sim.load(project(model))
    c = Controller(model, sim, workers=2).start()
    try:
        run(c, "cordon_host", {"host": H2})
        for i, (vcpus, mem) in enumerate(sizes):
            free = c.call(
                lambda: [
                    (h.cpus * h.cpu_overcommit - h.used()[0], h.memory_mib - h.used()[1])
                    for h in (c.model.reader().get(p, Host) for p in (H1, H3))
                ]
            )
            can = any(cpu >= vcpus and m >= mem for cpu, m in free)
            t = run(c, "spawn_vm", anywhere(f"v{i}", memory_mib=mem, vcpus=vcpus))
            assert (t.state is State.COMMITTED) == can, t.error
            if can:
                assert host_of(t) in (H1, H3)
        assert audit(c.model) == []
        assert_invariants(c)
    finally:
        c.stop()
