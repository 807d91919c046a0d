"""Plans: the diff of two placements, ordered so every intermediate state fits, and their execution."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropic.optimize import (
    VM,
    Host,
    OptimizeError,
    PlannedStep,
    StepOutcome,
    diff_placements,
    execute_plan,
    vm_path,
)

GIB = 1024


class CapacityCheckedCloud:
    """A stand-in for the transaction layer in unit tests: applies each step to an in-memory placement and
    refuses (like a constraint violation) any step that would overload a host."""

    def __init__(
        self, hosts: Mapping[str, Host], vms: Mapping[str, VM], placement: Mapping[str, str]
    ) -> None:
        self.hosts = hosts
        self.vms = dict(vms)
        self.where = dict(placement)
        self.refused: list[PlannedStep] = []

    def _fits(self, name: str, host: str) -> bool:
        cpu = sum(self.vms[n].vcpus for n, h in self.where.items() if h == host) + self.vms[name].vcpus
        mem = (
            sum(self.vms[n].memory_mib for n, h in self.where.items() if h == host)
            + self.vms[name].memory_mib
        )
        return cpu <= self.hosts[host].vcpus and mem <= self.hosts[host].memory_mib

    def run(self, step: PlannedStep) -> StepOutcome:
        args = step.args
        if step.procedure == "spawn_vm":
            name, host = str(args["name"]), str(args["host"])
            assert name not in self.where
            assert (args["vcpus"], args["memory_mib"]) == (self.vms[name].vcpus, self.vms[name].memory_mib)
        elif step.procedure == "migrate_vm":
            host, name = str(args["dest"]), str(args["vm"]).rsplit("/", 1)[1]
            assert args["vm"] == vm_path(self.where[name], name), "migrates from where the VM really is"
        else:
            name = str(args["vm"]).rsplit("/", 1)[1]
            assert args["vm"] == vm_path(self.where[name], name)
            del self.where[name]
            return StepOutcome(step, True, "COMMITTED")
        if not self._fits(name, host):
            self.refused.append(step)
            return StepOutcome(step, False, "ABORTED", error=f"{host} would be overloaded")
        self.where[name] = host
        return StepOutcome(step, True, "COMMITTED")


def fleet(n: int, vcpus: int = 8, memory_gib: int = 32) -> dict[str, Host]:
    return {f"/compute/r1/h{i}": Host(f"/compute/r1/h{i}", vcpus, memory_gib * GIB) for i in range(n)}


def vm(name: str, vcpus: int = 4, memory_gib: int = 8) -> VM:
    return VM(name, vcpus, memory_gib * GIB, image="/storage/r1/san-1/img-ubuntu")


def test_diff_names_the_three_procedures() -> None:
    hosts = fleet(3)
    vms = {n: vm(n) for n in ("keep", "move", "gone", "new")}
    current = {"keep": "/compute/r1/h0", "move": "/compute/r1/h0", "gone": "/compute/r1/h1"}
    target = {"keep": "/compute/r1/h0", "move": "/compute/r1/h2", "new": "/compute/r1/h1"}
    steps = diff_placements(current, target, vms, hosts)
    assert [s.to_dict() for s in steps] == [
        {"procedure": "destroy_vm", "args": {"vm": "/compute/r1/h1/gone"}},
        {"procedure": "migrate_vm", "args": {"vm": "/compute/r1/h0/move", "dest": "/compute/r1/h2"}},
        {
            "procedure": "spawn_vm",
            "args": {
                "host": "/compute/r1/h1",
                "name": "new",
                "image": "/storage/r1/san-1/img-ubuntu",
                "vcpus": 4,
                "memory_mib": 8 * GIB,
            },
        },
    ]
    assert diff_placements(current, current, vms, hosts) == []


def test_migrations_are_ordered_to_make_room_first() -> None:
    hosts = fleet(2)
    vms = {n: vm(n) for n in ("a", "b", "c")}
    # h1 is full (a, b); c on h0 must go to h1 after b leaves for h0.
    current = {"a": "/compute/r1/h1", "b": "/compute/r1/h1", "c": "/compute/r1/h0"}
    target = {"a": "/compute/r1/h1", "b": "/compute/r1/h0", "c": "/compute/r1/h1"}
    steps = diff_placements(current, target, vms, hosts)
    assert [s.args["vm"] for s in steps] == ["/compute/r1/h1/b", "/compute/r1/h0/c"]


def test_a_swap_between_full_hosts_parks_one_vm_on_a_free_host() -> None:
    hosts = fleet(3)
    vms = {n: vm(n, vcpus=8) for n in ("a", "b")}
    current = {"a": "/compute/r1/h0", "b": "/compute/r1/h1"}
    target = {"a": "/compute/r1/h1", "b": "/compute/r1/h0"}
    steps = diff_placements(current, target, vms, hosts)
    assert len(steps) == 3  # one extra migration through the free host h2
    cloud = CapacityCheckedCloud(hosts, vms, current)
    assert execute_plan(steps, cloud).ok
    assert cloud.where == target


def test_a_swap_with_no_room_anywhere_is_refused_before_anything_runs() -> None:
    hosts = fleet(2)
    vms = {n: vm(n, vcpus=8) for n in ("a", "b")}
    with pytest.raises(OptimizeError, match="no host has room"):
        diff_placements(
            {"a": "/compute/r1/h0", "b": "/compute/r1/h1"},
            {"a": "/compute/r1/h1", "b": "/compute/r1/h0"},
            vms,
            hosts,
        )


def test_execution_stops_at_the_first_refused_step() -> None:
    hosts = fleet(2)
    vms = {n: vm(n, vcpus=8) for n in ("a", "b", "c")}
    steps = diff_placements({}, {"a": "/compute/r1/h0", "b": "/compute/r1/h1", "c": "/compute/r1/h1"}, vms)
    cloud = CapacityCheckedCloud(hosts, vms, {})
    report = execute_plan(steps, cloud)
    assert not report.ok
    assert [o.committed for o in report.outcomes] == [True, True, False]
    assert report.to_dict()["outcomes"][-1]["error"] == "/compute/r1/h1 would be overloaded"


def random_placement(
    rng: random.Random, names: list[str], vms: Mapping[str, VM], hosts: Mapping[str, Host]
) -> dict[str, str]:
    free = {h: [hosts[h].vcpus, hosts[h].memory_mib] for h in hosts}
    out: dict[str, str] = {}
    for n in names:
        options = [h for h in hosts if free[h][0] >= vms[n].vcpus and free[h][1] >= vms[n].memory_mib]
        if options:
            h = rng.choice(options)
            free[h][0] -= vms[n].vcpus
            free[h][1] -= vms[n].memory_mib
            out[n] = h
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1_000_000), st.integers(2, 6), st.integers(1, 14))
def test_executing_a_plan_reaches_the_target_through_feasible_states(
    seed: int, n_hosts: int, n_vms: int
) -> None:
    rng = random.Random(seed)
    hosts = fleet(n_hosts, vcpus=8, memory_gib=16)
    vms = {f"v{i}": vm(f"v{i}", rng.choice([1, 2, 4]), rng.choice([2, 4, 8])) for i in range(n_vms)}
    names = list(vms)
    current = random_placement(rng, rng.sample(names, rng.randint(0, n_vms)), vms, hosts)
    target = random_placement(rng, rng.sample(names, rng.randint(0, n_vms)), vms, hosts)
    try:
        steps = diff_placements(current, target, vms, hosts)
    except OptimizeError:
        return  # a cycle with no room to park a VM: refused up front, which the test above checks
    cloud = CapacityCheckedCloud(hosts, vms, current)
    report = execute_plan(steps, cloud)
    assert report.ok, cloud.refused
    assert cloud.where == target
