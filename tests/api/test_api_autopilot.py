"""The autopilot's operator surface against a real server: ``/v1/autopilot/status|decisions`` (viewer),
``pause|resume|run-once`` (operator; 409 when the server runs no autopilot), and the ``tropic autopilot``
commands with their exit codes and ``--json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_harness import HOST, OPERATOR, VIEWER, Server, spawn_args, start_server
from typer.testing import CliRunner

from tropic.autopilot.actuator import ControllerExecutor, Guards
from tropic.autopilot.base import Snapshot
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.passes import MemoryPassBook
from tropic.autopilot.policies.hotspot import HotspotRelief
from tropic.cli.main import app
from tropic.model import VM

runner = CliRunner()
LOAD = {"hot-a": 6.0, "hot-b": 6.0, "hot-c": 6.0}  # 18 cores on host-01's 16 CPUs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield s
    s.stop()


def cli(server: Server, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["autopilot", *args, "--url", server.url, "--token", token], env={"COLUMNS": "300"}
    )
    return result.exit_code, result.stdout, result.stderr


def app_state(server: Server) -> Any:
    fastapi_app: Any = server._server.config.app
    return fastapi_app.state


def attach(server: Server) -> Coordinator:
    ctl = server.controller

    def source(at: float) -> Snapshot:
        def read() -> Snapshot:
            vms = [p for p, n in ctl.model.nodes.items() if n.kind == VM.kind]
            demand = {p: LOAD.get(p.rsplit("/", 1)[1], 0.0) for p in vms}
            return fleet_snapshot(ctl.model, at, demand)

        return ctl.call(read)

    c = Coordinator(source, [HotspotRelief()], ControllerExecutor(ctl), MemoryPassBook(), guards=Guards())
    app_state(server).autopilot = c
    return c


def test_without_an_autopilot_the_status_says_so_and_the_posts_are_refused(server: Server) -> None:
    v = server.client(VIEWER)
    assert v.get("/v1/autopilot/status").json()["enabled"] is False
    assert v.get("/v1/autopilot/decisions").json() == {"enabled": False, "decisions": []}
    r = server.client(OPERATOR).post("/v1/autopilot/pause")
    assert r.status_code == 409 and "--autopilot" in r.json()["error"]["message"]
    code, out, _ = cli(server, "status", token=VIEWER)
    assert code == 1 and "not enabled" in out
    code, _, err = cli(server, "run-once")
    assert code == 2 and "not enabled" in err


def test_operators_steer_and_everyone_reads_the_decisions(server: Server) -> None:
    for name in LOAD:
        r = server.client().post("/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args(name)})
        assert server.wait_final(r.json()["id"])["state"] == "COMMITTED"
    c = attach(server)
    try:
        assert server.client(VIEWER).post("/v1/autopilot/pause").status_code == 403  # viewers read only

        code, out, _ = cli(server, "pause", "--json")
        assert code == 0 and json.loads(out) == {"paused": True} and c.paused
        code, out, _ = cli(server, "status", "--json", token=VIEWER)
        st = json.loads(out)
        assert code == 0 and st["enabled"] and st["paused"] and st["policies"] == ["hotspot"]

        code, out, _ = cli(server, "run-once")  # runs even while paused: the operator asked
        assert code == 0, out
        assert "migrate_vm" in out and "COMMITTED" in out
        code, out, _ = cli(server, "resume")
        assert code == 0 and not c.paused

        code, out, _ = cli(server, "decisions", "--json", token=VIEWER)
        [d] = json.loads(out)["decisions"]
        assert d["status"] == "acted" and d["trigger"] == "run-once" and d["policy"] == "hotspot"
        [step] = d["steps"]
        assert step["procedure"] == "migrate_vm" and step["state"] == "COMMITTED"
        assert step["args"]["vm"].startswith(HOST + "/hot-") and d["utilisation"][HOST] > 0.9
        assert server.wait_final(step["txn"])["submitter"] == "autopilot"
        code, out, _ = cli(server, "decisions", token=VIEWER)
        assert code == 0 and "acted" in out
        code, out, _ = cli(server, "status", token=VIEWER)
        assert code == 0 and "autopilot paused" not in out and "last decision: hotspot acted" in out
    finally:
        app_state(server).autopilot = None
