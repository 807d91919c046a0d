"""The submission path: per-key idempotency locks, the batch endpoint, Client.submit_many, arguments as
text typed by the server, and a CLI submit that sends nothing but the submission."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest
from api_harness import HOST, IMAGE, OPERATOR, Server, auth, raw_connection, read_response, spawn_args
from typer.testing import CliRunner

from tropic.api.client import ApiError, Client
from tropic.api.idempotency import IdempotencyCache
from tropic.cli.main import app

runner = CliRunner()


def txn_count(server: Server) -> int:
    return len(server.controller.transactions())


def name() -> str:
    return f"vm-{uuid.uuid4().hex[:10]}"


# --- per-key idempotency ---------------------------------------------------------------------------------
def test_two_keys_do_not_wait_for_each_other() -> None:
    cache = IdempotencyCache()
    inside = threading.Event()
    release = threading.Event()

    def slow(binding: tuple[str, str]) -> int:
        inside.set()
        assert release.wait(10)
        return 1

    first = threading.Thread(target=cache.run, args=("op", "key-a", "fp", slow))
    first.start()
    assert inside.wait(10)
    try:
        # key-a is held across its (blocked) create; key-b goes through meanwhile.
        assert cache.run("op", "key-b", "fp", lambda b: 2) == (2, False)
    finally:
        release.set()
        first.join(10)
    assert cache.run("op", "key-a", "fp", lambda b: 3) == (1, True)
    assert len(cache.locks) == 0


def test_one_key_used_concurrently_makes_one_transaction() -> None:
    cache = IdempotencyCache()
    made: list[int] = []
    inside = threading.Event()
    release = threading.Event()
    results: list[tuple[int, bool]] = []

    def create(binding: tuple[str, str]) -> int:
        made.append(len(made) + 10)
        inside.set()
        assert release.wait(10)
        return made[-1]

    threads = [
        threading.Thread(target=lambda: results.append(cache.run("op", "k", "fp", create))) for _ in range(2)
    ]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    release.set()
    for t in threads:
        t.join(10)
    assert made == [10]
    assert sorted(results) == [(10, False), (10, True)]


def test_same_key_over_http_concurrently_is_one_transaction(server: Server) -> None:
    key = uuid.uuid4().hex
    body = {"procedure": "spawn_vm", "args": spawn_args(name())}
    answers: list[dict[str, Any]] = []
    before = txn_count(server)

    def post() -> None:
        with httpx.Client(base_url=server.url, headers=auth(OPERATOR), timeout=10) as c:
            r = c.post("/v1/transactions", json=body, headers={"Idempotency-Key": key})
            assert r.status_code == 202, r.text
            answers.append(r.json())

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len({a["id"] for a in answers}) == 1
    assert sorted(a["replayed"] for a in answers) == [False, True, True, True]
    assert txn_count(server) == before + 1


# --- the batch endpoint ----------------------------------------------------------------------------------
def test_batch_answers_each_item_in_order_once_durable(server: Server) -> None:
    c = server.client()
    items = [{"procedure": "spawn_vm", "args": spawn_args(name())} for _ in range(3)]
    r = c.post("/v1/transactions:batch", json={"items": items})
    assert r.status_code == 202, r.text
    answers = r.json()["items"]
    assert len(answers) == 3 and all(not a["replayed"] for a in answers)
    for item, a in zip(items, answers, strict=True):
        t = server.controller.get(a["id"])
        assert t.accepted and t.args["name"] == item["args"]["name"]
    accepted = [e for e in server.audit.entries() if e.get("txn") in {a["id"] for a in answers}]
    assert {e["outcome"] for e in accepted} == {"accepted"} and len(accepted) == 3


def test_batch_validation_is_atomic(server: Server) -> None:
    c = server.client()
    before = txn_count(server)
    bad = spawn_args(name())
    bad["vcpus"] = "two"
    items = [
        {"procedure": "spawn_vm", "args": spawn_args(name())},
        {"procedure": "spawn_vm", "args": bad},
        {"procedure": "spawn_vm", "args": spawn_args(name())},
    ]
    r = c.post("/v1/transactions:batch", json={"items": items})
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("item 1:")
    items[1] = {"procedure": "no_such_procedure", "args": {}}
    r = c.post("/v1/transactions:batch", json={"items": items})
    assert r.status_code in (404, 422) and r.json()["error"]["message"].startswith("item 1:")
    assert txn_count(server) == before


def test_batch_keys_are_per_item(server: Server) -> None:
    c = server.client()
    items = [{"procedure": "spawn_vm", "args": spawn_args(name()), "key": uuid.uuid4().hex} for _ in range(2)]
    first = c.post("/v1/transactions:batch", json={"items": items}).json()["items"]
    before = txn_count(server)
    items.append({"procedure": "spawn_vm", "args": spawn_args(name()), "key": uuid.uuid4().hex})
    again = c.post("/v1/transactions:batch", json={"items": items}).json()["items"]
    assert [a["id"] for a in again[:2]] == [a["id"] for a in first]
    assert [a["replayed"] for a in again] == [True, True, False]
    assert txn_count(server) == before + 1
    # A key reused for another call is that item's error; the other items go on.
    other = {"procedure": "spawn_vm", "args": spawn_args(name()), "key": items[0]["key"]}
    fresh = {"procedure": "spawn_vm", "args": spawn_args(name())}
    r = c.post("/v1/transactions:batch", json={"items": [other, fresh]})
    assert r.status_code == 202
    reused, ok = r.json()["items"]
    assert reused["error"]["code"] == "idempotency_key_reused" and reused["error"]["txn"] == first[0]["id"]
    assert ok["id"] > again[2]["id"]


def test_batch_size_limits(server: Server) -> None:
    c = server.client()
    item = {"procedure": "spawn_vm", "args": spawn_args("x")}
    assert c.post("/v1/transactions:batch", json={"items": [item] * 1001}).status_code == 422
    assert c.post("/v1/transactions:batch", json={"items": []}).status_code == 422
    # A body declared over the limit is refused before it is sent (the server then closes).
    with raw_connection(server.url) as sock:
        head = (
            f"POST /v1/transactions:batch HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {OPERATOR}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {2 << 20}\r\n\r\n"
        )
        sock.sendall(head.encode())
        assert read_response(sock).status == 413


def test_batch_checks_the_token_before_the_body(server: Server) -> None:
    stranger = server.client(token=None)
    r = stranger.post(
        "/v1/transactions:batch", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401
    viewer = server.client(token="viewer-token-0123456789abcdef")
    assert viewer.post("/v1/transactions:batch", content=b"{not json").status_code == 403


def test_client_submit_many(server: Server) -> None:
    before = txn_count(server)
    with Client(server.url, OPERATOR) as c:
        calls = [("spawn_vm", spawn_args(name())) for _ in range(3)]
        answers = c.submit_many(calls)
        assert [server.controller.get(a["id"]).args["name"] for a in answers] == [a["name"] for _, a in calls]
        keys = [uuid.uuid4().hex for _ in calls]
        calls = [("spawn_vm", spawn_args(name())) for _ in range(2)]
        first = c.submit_many(calls, keys=keys[:2])
        assert [a["id"] for a in c.submit_many(calls, keys=keys[:2])] == [a["id"] for a in first]
        with pytest.raises(ApiError) as err:
            c.submit_many([("spawn_vm", {"host": HOST})])
        assert err.value.status == 422 and "item 0:" in err.value.message
    assert txn_count(server) == before + 5


# --- text arguments ----------------------------------------------------------------------------------------
def test_text_arguments_are_typed_by_the_server(server: Server) -> None:
    c = server.client()
    args = {"host": HOST, "name": name(), "image": IMAGE, "vcpus": "1", "memory_mib": "512"}
    r = c.post("/v1/transactions", json={"procedure": "spawn_vm", "args": args})
    assert r.status_code == 422  # without text_args a string is a string
    r = c.post("/v1/transactions", json={"procedure": "spawn_vm", "args": args, "text_args": True})
    assert r.status_code == 202, r.text
    t = server.controller.get(r.json()["id"])
    assert t.args["vcpus"] == 1 and t.args["memory_mib"] == 512 and t.args["host"] == HOST
    args = {**args, "name": name(), "vcpus": "many"}
    r = c.post("/v1/transactions", json={"procedure": "spawn_vm", "args": args, "text_args": True})
    assert r.status_code == 422 and "'vcpus'" in r.json()["error"]["message"]


def test_cli_submit_sends_only_the_submission(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    paths: list[str] = []
    send = httpx.Client.request

    def spy(self: httpx.Client, method: str, url: Any, *a: Any, **kw: Any) -> httpx.Response:
        paths.append(f"{method} {url}")
        return send(self, method, url, *a, **kw)

    monkeypatch.setattr(httpx.Client, "request", spy)
    args = [f"host={HOST}", f"name={name()}", f"image={IMAGE}", "vcpus=1", "memory_mib=512"]
    result = runner.invoke(
        app, ["submit", "spawn_vm", *args, "--no-wait", "--json", "--url", server.url, "--token", OPERATOR]
    )
    assert result.exit_code == 0, result.stderr
    assert paths == ["POST /v1/transactions"]


# --- the audit log's shared writes ------------------------------------------------------------------------
def test_concurrent_audit_records_all_land_with_shared_syncs(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tropic.api.audit import AuditLog
    from tropic.api.auth import Principal, Role

    syncs: list[int] = []
    real_fsync = os.fsync
    gate = threading.Event()

    def slow_fsync(fd: int) -> None:
        syncs.append(fd)
        gate.wait(10)  # the first sync waits until every writer has queued behind it
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    log = AuditLog(tmp_path / "audit.jsonl")
    who = Principal("op", Role.OPERATOR)
    writers = [
        threading.Thread(target=log.record, args=(who, "submit", "accepted"), kwargs={"details": {"txn": i}})
        for i in range(8)
    ]
    for w in writers:
        w.start()
    later = log.record_later(who, "submit", "accepted", [{"txn": 100}, {"txn": 101}])
    for _ in range(400):  # until every line is written (all but the first then wait for a sync)
        if len(log.entries()) == 10:
            break
        threading.Event().wait(0.05)
    gate.set()
    for w in writers:
        w.join(10)
    later.result(10)
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sorted(e["txn"] for e in lines) == [*range(8), 100, 101]
    # The writers that came while the first sync ran shared the next one: two syncs for nine writes.
    assert 1 <= len(syncs) <= 2
