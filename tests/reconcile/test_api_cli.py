"""Drift, reload and repair through the REST API and the CLI, against a real server: roles, error
conventions, the audit log, and ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.api_harness import ADMIN, OPERATOR, VIEWER, Server, spawn_args, start_server
from tropic.cli.main import app
from tropic.model import project

HOST = "/compute/us-east/host-01"
SAN = "/storage/us-east/san-1"
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("audit") / "audit.jsonl", latency=0.0)
    try:
        with s.client() as c:
            for name in ("d1", "d2"):
                t = c.post(
                    "/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args(name)}
                ).json()
                assert s.wait_final(t["id"])["state"] == "COMMITTED"
        yield s
    finally:
        s.stop()


def cli(server: Server, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token])
    return result.exit_code, result.stdout, result.stderr


def test_drift_reload_repair_over_http(server: Server) -> None:
    viewer, operator = server.client(VIEWER), server.client(OPERATOR)
    assert viewer.get("/v1/drift").json()["items"] == []
    server.driver.crash_vm(f"{HOST}/d1")
    server.driver.drop_volume(f"{SAN}/vol-d2")
    report = viewer.get("/v1/drift", params={"path": "/compute"}).json()
    assert report["scanned"] is True and report["path"] == "/compute"
    assert [(d["path"], d["attribute"], d["logical"], d["physical"]) for d in report["items"]] == [
        (f"{HOST}/d1", "state", "running", "stopped")
    ]
    assert report["items"][0]["fenced_by"] == 0 and report["fenced"] == {f"{HOST}/d1": 0}
    assert viewer.get("/v1/drift", params={"scan": "false"}).json()["items"] == report["items"]
    # Viewers read; operators reload and repair.
    denied = viewer.post("/v1/reload", json={"path": f"{HOST}/d1"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    reloaded = operator.post("/v1/reload", json={"path": f"{HOST}/d1"})
    assert reloaded.status_code == 200, reloaded.text
    assert [d["path"] for d in reloaded.json()["changed"]] == [f"{HOST}/d1"]
    assert reloaded.json()["unfenced"] == [f"{HOST}/d1"]
    repaired = operator.post("/v1/repair", json={"path": SAN, "timeout": 30})
    assert repaired.status_code == 200, repaired.text
    body = repaired.json()
    assert body["consistent"] is True and body["unfenced"] == [f"{SAN}/vol-d2"]
    assert [(t["procedure"], t["state"]) for t in body["transactions"]] == [("recreate_volume", "COMMITTED")]
    assert viewer.get("/v1/drift").json() == {"path": "/", "scanned": True, "items": [], "fenced": {}}
    assert project(server.model) == server.driver.inventory()
    audit = [e for e in server.client(ADMIN).get("/v1/audit").json() if e["action"] in ("reload", "repair")]
    assert [(e["action"], e["outcome"], e["who"]) for e in audit] == [
        ("reload", "denied", "vera"),
        ("reload", "accepted", "otto"),
        ("repair", "accepted", "otto"),
    ]
    txn = body["transactions"][0]["id"]
    assert viewer.get(f"/v1/transactions/{txn}").json()["submitter"] == "otto"


def test_errors_follow_the_api_conventions(server: Server) -> None:
    operator = server.client(OPERATOR)
    missing = operator.post("/v1/reload", json={"path": "/compute/nowhere"})
    assert missing.status_code == 404 and missing.json()["error"] == {
        "code": "unknown_resource",
        "message": "no resource at /compute/nowhere",
        "path": "/compute/nowhere",
    }
    assert operator.get("/v1/drift", params={"path": "/x//y"}).status_code == 404
    bad = operator.post("/v1/repair", json={"path": "/", "timeout": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    extra = operator.post("/v1/reload", json={"path": "/", "force": True})
    assert extra.status_code == 422
    assert server.client(None).get("/v1/drift").status_code == 401
    # A reload that would break a constraint is a conflict naming the resource and the constraint.
    with server.driver._lock:
        server.driver.hosts[HOST]["vms"]["d2"]["memory_mib"] = 10**7
    refused = operator.post("/v1/reload", json={"path": HOST})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "constraint_violation"
    assert (
        refused.json()["error"]["constraint"] == "Host.memory_fits"
        and refused.json()["error"]["path"] == HOST
    )
    assert operator.post("/v1/repair", json={"path": HOST}).json()["consistent"] is True


def test_cli_drift_reload_repair(server: Server, tmp_path: Path) -> None:
    code, out, _ = cli(server, "drift", "--json", token=VIEWER)
    assert code == 0 and json.loads(out)["items"] == []
    code, out, _ = cli(server, "drift", token=VIEWER)
    assert code == 0 and "no drift" in out
    server.driver.crash_vm(f"{HOST}/d2")
    code, out, _ = cli(server, "drift", HOST, token=VIEWER)
    assert code == 1 and "d2" in out and "running" in out and "stopped" in out
    code, out, _ = cli(server, "drift", HOST, "--recorded", "--json", token=VIEWER)
    assert code == 1 and json.loads(out)["scanned"] is False
    code, out, err = cli(server, "reload", f"{HOST}/d2", token=VIEWER)
    assert code == 2 and "role viewer" in err and "Traceback" not in err
    code, out, _ = cli(server, "repair", f"{HOST}/d2", "--json")
    assert code == 0 and json.loads(out)["transactions"][0]["procedure"] == "restore_vm_state"
    server.driver.crash_vm(f"{HOST}/d2")
    cli(server, "drift", token=VIEWER)
    code, out, _ = cli(server, "reload", f"{HOST}/d2")
    assert code == 0 and "reloaded" in out and "unfenced" in out
    code, out, err = cli(server, "repair", "/nowhere")
    assert code == 2 and "no resource at /nowhere" in err
    code, out, _ = cli(server, "repair", "/")
    assert code == 0 and "consistent" in out
