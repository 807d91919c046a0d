"""The REST API against a real server on a loopback port: lifecycle, violations, access control, bad input,
idempotency, kill, plan, resources, metrics, events and the audit log."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from api_harness import ADMIN, HOST, OPERATOR, SECRETS, VIEWER, Server, auth, spawn_args

from core.helpers import WAIT_S, until
from tropic.api.client import Client


def submit(server: Server, body: dict[str, Any], token: str = OPERATOR, **headers: str) -> httpx.Response:
    return server.client(token).post("/v1/transactions", json=body, headers=headers)


def txn_count(server: Server) -> int:
    return len(server.controller.transactions())


# --- the acceptance scenarios ------------------------------------------------------------------------------
def test_spawn_is_watched_to_committed_and_the_vm_appears(server: Server) -> None:
    client = Client(server.url, OPERATOR)
    events: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def watch() -> None:
        # Follow the live event stream until our transaction is final.
        for ev in client.events():
            subscribed.set()
            if ev.kind == "transaction":
                events.append(ev.data["txn"])
                if ev.data["txn"]["state"] in ("COMMITTED", "ABORTED", "FAILED"):
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    until(lambda: server.events.subscribers > 0, "the event stream subscribed")

    r = submit(server, {"procedure": "spawn_vm", "args": spawn_args("web-1")})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] in ("SUBMITTED", "STARTED", "COMMITTED")
    assert r.headers["location"] == f"/v1/transactions/{body['id']}"
    watcher.join(WAIT_S)
    assert not watcher.is_alive()
    mine = [e for e in events if e["id"] == body["id"]]
    assert mine[-1]["state"] == "COMMITTED"
    assert "STARTED" in [e["state"] for e in mine]

    d = server.wait_final(body["id"])
    assert d["submitter"] == "otto"
    assert [a["action"] for a in d["actions"]] == [
        "clone_image",
        "export_volume",
        "import_volume",
        "create_vm",
    ]
    assert [s["status"] for s in d["steps"]] == ["done"] * 4
    assert d["latency_s"] > 0 and set(d["times"]) >= {"SUBMITTED", "STARTED", "COMMITTED"}

    vm = server.client(VIEWER).get(f"/v1/resources{HOST}/web-1")
    assert vm.status_code == 200
    assert vm.json()["kind"] == "vm" and vm.json()["attrs"]["state"] == "running"
    host = server.client(VIEWER).get(f"/v1/resources{HOST}", params={"depth": 1}).json()
    assert f"{HOST}/web-1" in [c["path"] for c in host["children"]]
    assert f"{HOST}/web-1" in server.driver.list_vms()
    client.close()


def test_constraint_violation_comes_back_aborted_with_constraint_and_path(server: Server) -> None:
    before = server.driver.calls
    r = submit(server, {"procedure": "spawn_vm", "args": spawn_args("huge", memory_mib=10**6)})
    assert r.status_code == 202
    d = server.wait_final(r.json()["id"])
    assert d["state"] == "ABORTED"
    assert d["error"]["code"] == "constraint_violation"
    assert d["error"]["constraint"] == "Host.memory_fits"
    assert d["error"]["path"] == HOST
    assert d["violations"][0]["constraint"] == "Host.memory_fits" and d["violations"][0]["path"] == HOST
    assert d["steps"] == []
    assert server.driver.calls == before  # no device touched
    assert server.client(VIEWER).get(f"/v1/resources{HOST}/huge").status_code == 404


def test_viewer_cannot_submit_plan_or_kill(server: Server) -> None:
    n = txn_count(server)
    c = server.client(VIEWER)
    r = c.post("/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args("nope")})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden" and "viewer" in r.json()["error"]["message"]
    assert c.post("/v1/plan", json={"procedure": "spawn_vm", "args": spawn_args("nope")}).status_code == 403
    assert c.post("/v1/transactions/1/kill").status_code == 403
    assert c.get("/v1/audit").status_code == 403  # admin only
    assert txn_count(server) == n


def test_no_token_is_401_everywhere_but_healthz(server: Server) -> None:
    anon = server.client(None)
    assert anon.get("/healthz").json() == {"status": "ok"}
    spec = server.client(VIEWER).get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        if path == "/healthz":
            continue
        concrete = path.replace("{txn_id}", "1").replace("{path}", "compute")
        for method in ops:
            r = anon.request(method.upper(), concrete, json={} if method == "post" else None)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["error"]["code"] == "unauthenticated"
            checked += 1
    assert checked >= 12
    assert anon.get("/openapi.json").status_code == 401
    assert anon.get("/metrics").status_code == 401
    wrong = server.client("not-a-valid-token-at-all")
    r = wrong.get("/v1/transactions")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    basic = anon.get("/v1/transactions", headers={"Authorization": f"Basic {OPERATOR}"})
    assert basic.status_code == 401


# --- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "status", "code", "needle"),
    [
        (b"{not json", 400, "malformed_json", "not valid JSON"),
        (b"[1, 2]", 422, "invalid_request", "body"),
        (b'{"args": {}}', 422, "invalid_request", "procedure"),
        (b'{"procedure": "rm -rf /", "args": {}}', 422, "unknown_procedure", "rm -rf /"),
        (b'{"procedure": "__import__(\'os\')", "args": {}}', 422, "unknown_procedure", "__import__"),
        (
            b'{"procedure": "spawn_vm", "args": {"name": "a", "image": "i", "vcpus": 1, "memory_mib": 1, '
            b'"host": 1}}',
            422,
            "invalid_arguments",
            "host",
        ),
        (b'{"procedure": "spawn_vm", "args": []}', 422, "invalid_request", "args"),
        (b'{"procedure": "spawn_vm", "args": {}, "extra": 1}', 422, "invalid_request", "extra"),
        (
            b'{"procedure": "resize_vm", "args": {"vm": "/x", "vcpus": NaN, "memory_mib": 1}}',
            422,
            None,
            "vcpus",
        ),
        (
            b'{"procedure": "resize_vm", "args": {"vm": "/x", "vcpus": true, "memory_mib": 1}}',
            422,
            None,
            "vcpus",
        ),
        (
            b'{"procedure": "resize_vm", "args": {"vm": "/x", "vcpus": 99999999999999999999999, '
            b'"memory_mib": 1}}',
            422,
            "invalid_arguments",
            "safe integer range",
        ),
        (b'{"procedure": "stop_vm", "args": {"vm": "\\ud800"}}', 422, "invalid_arguments", "Unicode"),
    ],
)
def test_bad_input_is_a_4xx_json_error_and_creates_nothing(
    server: Server, content: bytes, status: int, code: str | None, needle: str
) -> None:
    n = txn_count(server)
    r = server.client(OPERATOR).post(
        "/v1/transactions", content=content, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if code is not None:
        assert err["code"] == code
    assert needle in err["message"] or needle in json.dumps(err.get("problems"))
    assert txn_count(server) == n


def test_unknown_things_are_404_naming_them(server: Server) -> None:
    c = server.client(VIEWER)
    r = c.get("/v1/resources/compute/mars/host-99")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "unknown_resource",
        "message": "no resource at /compute/mars/host-99",
        "path": "/compute/mars/host-99",
    }
    r = c.get("/v1/transactions/999999")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_transaction"
    assert c.get("/v1/transactions/abc").status_code == 422
    assert c.get("/v1/nothing-here").json()["error"]["code"] == "not_found"
    r = c.delete("/v1/transactions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_too_large_bodies_are_refused(server: Server) -> None:
    big = b'{"procedure": "x", "args": {"a": "' + b"x" * (2 << 20) + b'"}}'
    r = server.client(OPERATOR).post(
        "/v1/transactions", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


# --- idempotency -------------------------------------------------------------------------------------------
def test_idempotency_key_never_creates_a_second_transaction(server: Server) -> None:
    body = {"procedure": "spawn_vm", "args": spawn_args("idem-1")}
    first = submit(server, body, **{"Idempotency-Key": "retry-abc"})
    n = txn_count(server)
    again = submit(server, body, **{"Idempotency-Key": "retry-abc"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    assert txn_count(server) == n
    other = submit(
        server, {"procedure": "spawn_vm", "args": spawn_args("idem-2")}, **{"Idempotency-Key": "retry-abc"}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # Keys are per token: another token's identical key is a different request.
    mine = submit(
        server, {"procedure": "stop_vm", "args": {"vm": "/x"}}, ADMIN, **{"Idempotency-Key": "retry-abc"}
    )
    assert mine.status_code == 202 and mine.json()["id"] != first.json()["id"]
    server.wait_final(first.json()["id"])


def test_concurrent_retries_with_one_key_make_one_transaction(server: Server) -> None:
    body = {"procedure": "stop_vm", "args": {"vm": f"{HOST}/nothing"}}
    ids: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=server.url, headers=auth(OPERATOR)) as c:
            ids.append(
                c.post("/v1/transactions", json=body, headers={"Idempotency-Key": "race-1"}).json()["id"]
            )

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


# --- reading -----------------------------------------------------------------------------------------------
def test_list_filters_and_pages(server: Server) -> None:
    ids = [
        submit(server, {"procedure": "stop_vm", "args": {"vm": f"/no/vm-{i}"}}).json()["id"] for i in range(5)
    ]
    for i in ids:
        server.wait_final(i)
    c = server.client(VIEWER)
    page = c.get("/v1/transactions", params={"procedure": "stop_vm", "state": "ABORTED", "limit": 2}).json()
    assert [t["id"] for t in page["items"]] == sorted(ids, reverse=True)[:2]
    assert all(t["state"] == "ABORTED" and t["error"]["code"] == "unknown_resource" for t in page["items"])
    nxt = c.get(
        "/v1/transactions", params={"procedure": "stop_vm", "limit": 2, "before": page["next_before"]}
    )
    assert [t["id"] for t in nxt.json()["items"]] == sorted(ids, reverse=True)[2:4]
    assert c.get("/v1/transactions", params={"state": "NOPE"}).status_code == 422
    assert c.get("/v1/transactions", params={"limit": 0}).status_code == 422


def test_list_by_resource_path_and_time_and_show_a_past_transaction(server: Server) -> None:
    """Filters by the resource a transaction was about and by submission time; a final transaction,
    no longer in the controller's memory, is shown from the store."""
    mark = time.time()
    ids = [
        submit(server, {"procedure": "stop_vm", "args": {"vm": f"/compute/us-west/gone-{i}"}}).json()["id"]
        for i in range(3)
    ]
    for i in ids:
        server.wait_final(i)
    c = server.client(VIEWER)
    page = c.get("/v1/transactions", params={"path": "/compute/us-west", "since": mark, "limit": 10}).json()
    assert [t["id"] for t in page["items"]] == sorted(ids, reverse=True)
    one = c.get("/v1/transactions", params={"path": "compute/us-west/gone-1/", "since": mark}).json()
    assert [t["id"] for t in one["items"]] == [ids[1]]
    assert c.get("/v1/transactions", params={"path": "/compute/us-west", "until": mark}).json()["items"] == []
    assert c.get("/v1/transactions", params={"since": "nan"}).status_code == 422
    assert server.controller.live_record(ids[0]) is None  # final and durable: out of memory
    shown = c.get(f"/v1/transactions/{ids[0]}").json()
    assert shown["id"] == ids[0] and shown["state"] == "ABORTED" and shown["args"]["vm"].endswith("gone-0")


def test_resources_subtree_with_depth(server: Server) -> None:
    c = server.client(VIEWER)
    root = c.get("/v1/resources", params={"depth": 2}).json()
    assert root["path"] == "/" and root["kind"] == "root" and root["truncated"] is False
    assert [k["name"] for k in root["children"]] == ["compute", "network", "storage"]
    assert all(k["children"] is not None for k in root["children"])
    assert all(g["children"] is None for k in root["children"] for g in k["children"])
    shallow = c.get("/v1/resources/network/us-east/router-1", params={"depth": 0}).json()
    assert (
        shallow["kind"] == "router" and shallow["children"] is None and shallow["attrs"]["role"] == "primary"
    )
    assert c.get("/v1/resources/network/us-east/router-1/").json()["path"] == "/network/us-east/router-1"
    assert c.get("/v1/resources", params={"depth": 65}).status_code == 422


def test_procedures_list_names_and_argument_schemas(server: Server) -> None:
    procs = {p["name"]: p for p in server.client(VIEWER).get("/v1/procedures").json()}
    assert {"spawn_vm", "migrate_vm", "set_next_hop"} <= set(procs)
    params = {p["name"]: p["type"] for p in procs["spawn_vm"]["params"]}
    assert params == {
        "host": "string",
        "region": "string",
        "name": "string",
        "image": "string",
        "vcpus": "integer",
        "memory_mib": "integer",
    }
    optional = {p["name"] for p in procs["spawn_vm"]["params"] if not p["required"]}
    assert optional == {"host", "region"}  # without them the host is chosen during simulation
    assert {"cordon_host", "uncordon_host"} <= set(procs)


def test_plan_is_a_dry_run(server: Server) -> None:
    version = server.model.version
    n = txn_count(server)
    c = server.client(OPERATOR)
    ok = c.post("/v1/plan", json={"procedure": "spawn_vm", "args": spawn_args("planned")}).json()
    assert ok["ok"] is True and [a["action"] for a in ok["actions"]][-1] == "create_vm"
    assert HOST in ok["locks"]["write"]
    bad = c.post(
        "/v1/plan", json={"procedure": "spawn_vm", "args": spawn_args("planned", memory_mib=10**6)}
    ).json()
    assert bad["ok"] is False and bad["violations"][0]["constraint"] == "Host.memory_fits"
    missing = c.post("/v1/plan", json={"procedure": "stop_vm", "args": {"vm": "/compute/x"}}).json()
    assert missing["ok"] is False and missing["error"]["code"] == "unknown_resource"
    assert server.model.version == version and txn_count(server) == n
    assert c.get(f"/v1/resources{HOST}/planned").status_code == 404


def test_kill_rolls_back_a_running_transaction(server: Server) -> None:
    held = server.driver.hang("/compute/eu-west/host-02", action="import_volume", timeout=120)  # step 3
    try:
        r = submit(
            server, {"procedure": "spawn_vm", "args": spawn_args("killme", host="/compute/eu-west/host-02")}
        )
        txn_id = r.json()["id"]
        assert held.entered.wait(WAIT_S), "the spawn never reached import_volume"
        k = server.client(OPERATOR).post(f"/v1/transactions/{txn_id}/kill")
        assert k.status_code == 202 and k.json()["kill_requested"] is True
        server.driver.release(held)  # the step ends; the kill rolls back what was done
        d = server.wait_final(txn_id)
    finally:
        server.driver.release()
    assert d["state"] == "ABORTED" and "KILLED" in d["times"]
    assert d["error"]["code"] == "killed"
    assert any(s["undo"] for s in d["steps"])  # the clone was undone
    assert "/compute/eu-west/host-02/killme" not in server.driver.list_vms()
    again = server.client(OPERATOR).post(f"/v1/transactions/{txn_id}/kill")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_final"
    assert server.client(OPERATOR).post("/v1/transactions/424242/kill").status_code == 404


def test_metrics_in_prometheus_text_format(server: Server) -> None:
    r = server.client(VIEWER).get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for needle in (
        'tropic_transactions{state="COMMITTED"}',
        "tropic_transactions_submitted_total",
        'tropic_transactions_finished_total{outcome="aborted"}',
        "tropic_transaction_latency_seconds_bucket{",
        "tropic_queue_depth",
        "tropic_deferrals_total",
        "tropic_rollbacks_total",
        "tropic_in_flight",
    ):
        assert needle in text, needle
    committed = next(
        line for line in text.splitlines() if line.startswith('tropic_transactions{state="COMMITTED"}')
    )
    assert float(committed.split()[-1]) >= 1
    stats = server.client(VIEWER).get("/v1/stats").json()
    assert stats["counters"]["committed"] >= 1 and stats["queue_depth"] >= 0


def test_events_resume_after_last_event_id(server: Server) -> None:
    client = Client(server.url, VIEWER)
    first = submit(server, {"procedure": "stop_vm", "args": {"vm": "/resume/a"}}).json()["id"]
    server.wait_final(first)
    seq = server.events.seq
    second = submit(server, {"procedure": "stop_vm", "args": {"vm": "/resume/b"}}).json()["id"]
    server.wait_final(second)
    got = []
    for ev in client.events(last_event_id=seq - 1):
        got.append((ev.id, ev.data["txn"]["id"], ev.data["txn"]["state"]))
        if ev.data["txn"]["id"] == second and ev.data["txn"]["state"] == "ABORTED":
            break
    assert got[0][0] == seq  # replayed from the history, in order
    assert (second, "ABORTED") in [(t, s) for _, t, s in got]
    client.close()


def test_whoami_and_audit_log_without_secrets(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    assert server.client(VIEWER).get("/v1/whoami").json() == {"name": "vera", "role": "viewer"}
    txn = submit(server, {"procedure": "stop_vm", "args": {"vm": "/audit/x"}}).json()["id"]
    server.client(VIEWER).post("/v1/transactions", json={"procedure": "stop_vm", "args": {"vm": "/x"}})
    entries = server.client(ADMIN).get("/v1/audit", params={"limit": 1000}).json()
    accepted = [e for e in entries if e["action"] == "submit" and e.get("txn") == txn]
    assert accepted and accepted[0]["who"] == "otto" and accepted[0]["outcome"] == "accepted"
    assert accepted[0]["procedure"] == "stop_vm" and accepted[0]["ts"] > 0
    assert any(e["who"] == "vera" and e["outcome"] == "denied" for e in entries)
    assert any(e["action"] == "kill" and e["who"] == "otto" for e in entries)
    assert server.audit.path is not None
    on_disk = server.audit.path.read_text()
    assert json.loads(on_disk.splitlines()[0])["who"]
    for secret in SECRETS:
        assert secret not in on_disk
        assert secret not in caplog.text


def test_dashboard_shell_is_served_with_a_strict_csp(server: Server) -> None:
    anon = server.client(None)
    page = anon.get("/")
    assert page.status_code == 200 and "tropic dashboard" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert anon.get(asset).status_code == 200
    assert server.client(VIEWER).get("/v1/stats").headers["cache-control"] == "no-store"
