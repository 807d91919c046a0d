"""A small day in a datacenter on libvirt: the generated datacenter of ``tropic demo`` provisioned on
private test hypervisors, then spawns, a migration, a spawn that libvirt itself refuses (rolled back),
stop/start, resize, destroy, a router change; the model and libvirt must agree, with no orphans."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING
from tropic.drivers.registry import open_driver
from tropic.model import Model, project
from tropic.scenario import build_datacenter, host_path, image_path
from tropic.txn import Controller, State

pytestmark = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)

US, EU = "us-east", "eu-west"
NET = f"/network/{US}"


def spawn(host: str, name: str, region: str) -> dict[str, Any]:
    return {"host": host, "name": name, "image": image_path(region), "vcpus": 2, "memory_mib": 4096}


@pytest.fixture
def dc() -> Iterator[tuple[Model, Any]]:
    model = build_datacenter()
    driver = open_driver("libvirt+test:///default")
    driver.load(project(model))  # type: ignore[attr-defined]
    yield model, driver
    driver.close()


def test_a_day_on_libvirt_ends_consistent_without_orphans(dc: tuple[Model, Any]) -> None:
    from tropic.drivers.libvirt import refuse_domains

    model, driver = dc
    driver.customize_domain = refuse_domains("flaky-1")
    with Controller(model, driver, workers=8) as c:
        jobs = [spawn(host_path(US, 1 + i % 2), f"web-{i}", US) for i in range(6)]
        jobs += [spawn(host_path(EU, 1 + i % 3), f"api-{i}", EU) for i in range(4)]
        txns = [c.submit("spawn_vm", j) for j in jobs]
        assert c.drain(60)
        assert [t.state for t in txns] == [State.COMMITTED] * len(txns), [t.error for t in txns]

        def run(proc: str, args: dict[str, Any]) -> Any:
            return c.wait(c.submit(proc, args), 30)

        assert run("migrate_vm", {"vm": f"{host_path(US, 1)}/web-0", "dest": host_path(US, 3)}).state is (
            State.COMMITTED
        )
        flaky = run("spawn_vm", spawn(host_path(EU, 4), "flaky-1", EU))
        assert flaky.state is State.ABORTED
        assert flaky.error is not None and host_path(EU, 4) in flaky.error["message"]
        for proc in ("stop_vm", "start_vm"):
            assert run(proc, {"vm": f"{host_path(EU, 1)}/api-0"}).state is State.COMMITTED
        assert run(
            "resize_vm", {"vm": f"{host_path(EU, 2)}/api-1", "vcpus": 4, "memory_mib": 8192}
        ).state is (State.COMMITTED)
        assert run("destroy_vm", {"vm": f"{host_path(US, 2)}/web-1"}).state is State.COMMITTED
        hop = run(
            "set_next_hop", {"router": f"/network/{US}/router-2", "next_hop": f"/network/{US}/router-1"}
        )
        assert hop.state is State.COMMITTED

        report = c.check()
        assert report["consistent"], report["differences"]
        assert report["orphans"] == []
        assert report["violations"] == []

    # And through libvirt itself: the domains and volumes are exactly the model's VMs and volumes.
    domains = {
        f"{h}/{dom.name()}"
        for h in (p for p, n in model.nodes.items() if n.kind == "host")
        for dom in driver.connection(h).listAllDomains(0)
    }
    assert domains == {p for p, n in model.nodes.items() if n.kind == "vm"}
    assert len(domains) == 9
    volumes = {
        f"{s}/{v.name()}"
        for s in (p for p, n in model.nodes.items() if n.kind == "storage_host")
        for v in driver.connection(s).storagePoolLookupByName("tropic-volumes").listAllVolumes(0)
    }
    assert volumes == {p for p, n in model.nodes.items() if n.kind == "volume"}


def test_tropic_demo_on_libvirt_reports_consistent_and_no_orphans() -> None:
    pytest.importorskip("tropic.scenario.demo", reason="the demo scenario is not in this tree")
    tropic = Path(sys.executable).with_name("tropic")
    if not tropic.exists():
        pytest.skip(f"no `tropic` command installed next to {sys.executable}")
    proc = subprocess.run(
        [str(tropic), "demo", "--driver", "libvirt", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "No such option" in proc.stderr:
        pytest.skip("this tree's `tropic demo` has no --driver option yet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["driver"] == "libvirt"
    assert summary["consistent"] is True and summary["orphans"] == 0
