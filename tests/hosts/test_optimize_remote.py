"""``tropic optimize placement --url`` and ``rebalance --url`` work on a running server's real model: the
hosts and VMs are read through the API, cordoned hosts take nothing, and the rebalance's moves are
submitted as transactions through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from api.api_harness import IMAGE, OPERATOR, Server, start_server
from tropic.cli.main import app
from tropic.model import Host, audit
from tropic.txn import State

runner = CliRunner()
CORDONED = "/compute/us-east/host-02"


@pytest.fixture
def server() -> Iterator[Server]:
    s = start_server(latency=0.0)
    c = s.controller
    for i, host in enumerate(("host-01", "host-02", "host-03", "host-04")):
        for j in range(2):
            args = {
                "host": f"/compute/us-east/{host}",
                "name": f"vm-{i}-{j}",
                "image": IMAGE,
                "vcpus": 1,
                "memory_mib": 2048,
            }
            assert c.wait(c.submit("spawn_vm", args), 30).state is State.COMMITTED
    assert c.wait(c.submit("cordon_host", {"host": CORDONED}), 30).state is State.COMMITTED
    yield s
    s.stop()


def optimize(server: Server, *args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, ["optimize", *args, "--url", server.url, "--token", OPERATOR, "--json"])
    out = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, out, " ".join(result.stderr.split())


def test_placement_reads_the_servers_hosts_and_leaves_cordoned_ones_out(server: Server) -> None:
    hosts = server.controller.call(lambda: server.model.count("host"))
    code, out, err = optimize(server, "placement", "--vms", "12", "--show-plan", "--time-limit", "3")
    assert code == 0, err
    assert out["url"] == server.url and out["hosts"] == hosts - 1 and out["running_vms"] == 6
    assert out["vms"] == 18
    spawns = [s for s in out["plan"] if s["procedure"] == "spawn_vm"]
    assert len(spawns) == 12 and all(s["args"]["name"].startswith("new-") for s in spawns)
    assert all(s["args"]["host"] != CORDONED for s in spawns)


def test_rebalance_submits_its_moves_through_the_api_and_leaves_a_cordoned_host_alone(server: Server) -> None:
    c = server.controller
    on_cordoned = c.call(lambda: sorted(v.name for v in server.model.reader().get(CORDONED, Host).vms()))
    code, out, err = optimize(server, "rebalance", "--execute", "--time-limit", "3")
    assert code == 0, err
    assert out["execution"]["ok"] and out["migrations"] > 0
    for o in out["execution"]["outcomes"]:
        assert o["procedure"] == "migrate_vm" and o["args"]["dest"] != CORDONED
        assert c.get(int(o["txn_id"])).state is State.COMMITTED  # the server ran each move
    assert (
        c.call(lambda: sorted(v.name for v in server.model.reader().get(CORDONED, Host).vms())) == on_cordoned
    )
    assert c.drain(60) and audit(server.model) == [] and c.check()["consistent"]
