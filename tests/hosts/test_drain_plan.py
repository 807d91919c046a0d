"""The drain plan, as a property: every VM of the host is either assigned or named as stuck, targets are
other, uncordoned hosts of the region, and no target ends over its capacity (memory, vCPUs x overcommit)
once all the planned VMs are on it. A VM is stuck only if no target had room for it at its turn."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.helpers import small_dc
from tropic.model import VM, Host
from tropic.optimize.drain import plan_drain

SOURCE = "/compute/r1/host-01"
sizes = st.tuples(st.integers(1, 12), st.sampled_from([1024, 2048, 4096, 8192]))


@given(
    on_source=st.lists(sizes, min_size=1, max_size=8),
    elsewhere=st.lists(st.tuples(st.integers(2, 3), sizes), max_size=8),
    cordon_two=st.booleans(),
)
def test_a_drain_plan_respects_every_target_and_accounts_for_every_vm(
    on_source: list[tuple[int, int]], elsewhere: list[tuple[int, tuple[int, int]]], cordon_two: bool
) -> None:
    model = small_dc(memory_mib=16384)
    for i, (vcpus, mem) in enumerate(on_source):
        model.add(f"{SOURCE}/s{i}", VM, vcpus=vcpus, memory_mib=mem)
    for i, (h, (vcpus, mem)) in enumerate(elsewhere):
        model.add(f"/compute/r1/host-0{h}/e{i}", VM, vcpus=vcpus, memory_mib=mem)
    if cordon_two:
        model.nodes["/compute/r1/host-02"].attrs["cordoned"] = True
    plan = plan_drain(model, SOURCE)
    moved = {str(s.args["vm"]): str(s.args["dest"]) for s in plan.moves}
    assert set(moved) | set(plan.stuck) == {f"{SOURCE}/s{i}" for i in range(len(on_source))}
    assert not set(moved) & set(plan.stuck)
    view = model.reader()
    free: dict[str, list[int]] = {}
    for path in model.children("/compute/r1"):
        host = view.get(path, Host)
        used_cpu, used_mem = host.used()
        if path != SOURCE and not host.cordoned:
            free[path] = [math.floor(host.cpus * host.cpu_overcommit) - used_cpu, host.memory_mib - used_mem]
    for dest in moved.values():
        assert dest in free, dest  # another, uncordoned host of the region
    order = sorted(view.get(SOURCE, Host).vms(), key=lambda v: (-v.memory_mib, -v.vcpus, v.name))
    for v in order:
        if v.path in moved:
            room = free[moved[v.path]]
            room[0] -= v.vcpus
            room[1] -= v.memory_mib
            assert room[0] >= 0 and room[1] >= 0, f"{moved[v.path]} over capacity"
        else:
            assert not any(c >= v.vcpus and m >= v.memory_mib for c, m in free.values())
            why = plan.stuck[v.path]
            assert why.startswith(f"no host in /compute/r1 other than {SOURCE} fits"), why
