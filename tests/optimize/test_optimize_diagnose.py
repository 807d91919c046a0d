"""Infeasible placements name the binding constraint and resources: counting arguments first (VMs too
big, demand over capacity, a group its caps cannot hold), then re-solving with each family dropped."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tropic.cli.main import app
from tropic.optimize import (
    VM,
    AntiAffinity,
    Host,
    Infeasible,
    Level,
    PlacementProblem,
    RegionLimit,
    Spread,
    make_hosts,
    solve_placement,
)
from tropic.optimize.diagnose import binding_families, counting_reasons, explain

runner = CliRunner()


def hosts(n: int, *, vcpus: int = 16, memory_mib: int = 65536, rack: str | None = None) -> tuple[Host, ...]:
    return tuple(Host(f"/compute/r1/h{i}", vcpus, memory_mib, "r1", rack or f"rack{i}") for i in range(n))


def vms(n: int, *, vcpus: int = 2, memory_mib: int = 2048) -> tuple[VM, ...]:
    return tuple(VM(f"vm{i}", vcpus, memory_mib) for i in range(n))


@pytest.mark.parametrize("count", [6, 8, 10, 12, 16, 17])
def test_the_generated_batch_places_on_small_fleets(count: int) -> None:
    """The generator used to put up to 16 hosts in one rack, where "at most half of a tenant's VMs per
    rack" cannot hold: 20 VMs on 6 hosts were refused. A fleet now spans at least two racks."""
    assert len({h.failure_domain for h in make_hosts(count)}) >= 2
    result = runner.invoke(app, ["optimize", "placement", "--vms", "20", "--hosts", str(count), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["hosts_cp"] >= 1


def test_a_spread_no_rack_layout_allows_is_named_with_its_group_and_domains() -> None:
    group = tuple(f"vm{i}" for i in range(4))
    problem = PlacementProblem(hosts(6, rack="rack0"), vms(4), (Spread(group, Level.FAILURE_DOMAIN, 2),))
    with pytest.raises(Infeasible) as e:
        solve_placement(problem)
    msg = e.value.message
    assert "spread (per failure domain)" in msg and "group vm0.. of 4 VMs" in msg
    assert "at most 2 per failure domain" in msg and "1 failure domain(s) [rack0 (6 hosts)]" in msg


def test_anti_affinity_over_too_few_hosts_names_the_cap() -> None:
    group = tuple(f"vm{i}" for i in range(5))
    problem = PlacementProblem(hosts(2), vms(5), (AntiAffinity(group, 2),))
    reasons = counting_reasons(problem)
    assert len(reasons) == 1 and reasons[0].startswith("anti-affinity (per host)")
    assert "at most 4 of them can be placed" in reasons[0]


def test_a_vm_no_host_can_take_and_total_demand_are_named() -> None:
    problem = PlacementProblem(hosts(2), (VM("big", 32, 1024), *vms(3)))
    reasons = counting_reasons(problem)
    assert any("VM big (32 vCPUs/1024 MiB) fits on no host (largest 16 vCPUs" in r for r in reasons)
    problem = PlacementProblem(hosts(2), vms(20))
    assert counting_reasons(problem) == ["capacity: the VMs need 40 vCPUs, the 2 hosts have 32"]


def test_a_binding_family_counting_cannot_see_is_found_by_relaxation() -> None:
    # Two VMs that fit on two hosts but not together on one; the region may use only one host.
    problem = PlacementProblem(hosts(2), vms(2, vcpus=10), (RegionLimit("r1", max_hosts=1),))
    assert counting_reasons(problem) == []
    assert binding_families(problem) == ["region limit"]
    with pytest.raises(Infeasible) as e:
        solve_placement(problem)
    assert "region limit: without these constraints the VMs fit" in e.value.message


def test_pure_bin_packing_is_named_as_capacity() -> None:
    problem = PlacementProblem(hosts(2, vcpus=10), vms(3, vcpus=6))
    assert explain(problem) == [
        "capacity: the VMs do not pack onto the hosts (bin packing, every host too full somewhere)"
    ]
