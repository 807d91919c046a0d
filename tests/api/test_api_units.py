"""Units of the API layer without a server: tokens files and roles, the audit log, idempotency keys, the
event broker's replay and back-pressure, and the documented request schema of procedure calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tropic.api.audit import AuditLog
from tropic.api.auth import Principal, Role, TokenStore
from tropic.api.events import EventBroker
from tropic.api.idempotency import IdempotencyCache, KeyReused, fingerprint
from tropic.api.models import procedure_call_schema
from tropic.errors import ConfigError
from tropic.txn import REGISTRY

SECRET_A = "a" * 24
SECRET_B = "b" * 24


def test_tokens_from_json_and_toml(tmp_path: Path) -> None:
    j = tmp_path / "tokens.json"
    j.write_text(json.dumps([{"name": "ci", "token": SECRET_A, "role": "operator"}]))
    t = tmp_path / "tokens.toml"
    t.write_text(f'[[tokens]]\nname = "ro"\ntoken = "{SECRET_B}"\nrole = "viewer"\n')
    assert TokenStore.load(j).authenticate(SECRET_A) == Principal("ci", Role.OPERATOR)
    assert TokenStore.load(t).authenticate(SECRET_B) == Principal("ro", Role.VIEWER)
    odd = tmp_path / "tokens"
    odd.write_text(json.dumps({"tokens": [{"name": "x", "token": SECRET_A, "role": "admin"}]}))
    assert TokenStore.load(odd).authenticate(SECRET_A) == Principal("x", Role.ADMIN)


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        ([{"name": "a", "token": "short", "role": "viewer"}], "at least 16"),
        ([{"name": "a", "token": SECRET_A, "role": "root"}], "unknown role"),
        (
            [
                {"name": "a", "token": SECRET_A, "role": "viewer"},
                {"name": "a", "token": SECRET_B, "role": "viewer"},
            ],
            "twice",
        ),
        (
            [
                {"name": "a", "token": SECRET_A, "role": "viewer"},
                {"name": "b", "token": SECRET_A, "role": "viewer"},
            ],
            "same secret",
        ),
        ([{"name": "a", "token": SECRET_A}], "lacks"),
        ([{"name": "a", "token": SECRET_A, "role": "viewer", "x": 1}], "unknown field"),
        ([], "no tokens"),
        ("nope", "expected a list"),
    ],
)
def test_bad_tokens_files_are_refused_without_echoing_secrets(entries: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        TokenStore.from_data(entries)
    assert needle in str(info.value)
    assert SECRET_A not in str(info.value) and SECRET_B not in str(info.value)


def test_malformed_tokens_file_message_hides_content(tmp_path: Path) -> None:
    p = tmp_path / "tokens.json"
    p.write_text('[{"name": "a", "token": "' + SECRET_A + '" "role": }]')
    with pytest.raises(ConfigError) as info:
        TokenStore.load(p)
    assert "line 1" in str(info.value) and SECRET_A not in str(info.value)


def test_roles_and_authentication() -> None:
    store = TokenStore([("v", SECRET_A, "viewer"), ("o", SECRET_B, "operator")])
    assert store.authenticate(None) is None and store.authenticate("") is None
    assert store.authenticate(SECRET_A + "x") is None
    assert store.authenticate("ünïcode-tøken-ünïcode") is None
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert SECRET_A not in repr(store) and SECRET_A not in repr(store._entries)


def test_audit_log_appends_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record(Principal("otto", Role.OPERATOR), "submit", "accepted", details={"txn": 1})
    log.close()
    with open(path, "a") as f:
        f.write('{"torn": ')  # a crash mid-line
    again = AuditLog(path)
    again.record(Principal("ada", Role.ADMIN), "kill", "accepted", details={"txn": 1})
    assert [e["who"] for e in again.entries()] == ["otto", "ada"]
    assert again.entries(1)[0]["action"] == "kill"
    again.close()
    assert path.read_text().startswith('{"action": "submit"')


def test_idempotency_cache_is_bounded_and_scoped() -> None:
    cache = IdempotencyCache(capacity=2)
    made: list[int] = []

    def create(binding: tuple[str, str]) -> int:
        made.append(len(made) + 1)
        return made[-1]

    fp = fingerprint("p", {"a": 1})
    assert cache.run("otto", "k", fp, create) == (1, False)
    assert cache.run("otto", "k", fp, create) == (1, True)
    assert cache.run("ada", "k", fp, create) == (2, False)
    with pytest.raises(KeyReused):
        cache.run("otto", "k", fingerprint("p", {"a": 2}), create)
    cache.run("x", "k2", fp, create)
    assert len(cache) == 2  # the oldest key was forgotten


def test_event_broker_replays_filters_and_resyncs() -> None:
    async def scenario() -> None:
        broker = EventBroker(history=3, queue_size=2, ping_s=0.05)
        broker.attach(asyncio.get_running_loop())
        for i in range(1, 5):
            broker.publish("transaction", {"txn": {"id": i, "state": "COMMITTED"}})
        await asyncio.sleep(0.01)
        assert broker.seq == 4
        # Replay from the history after event 2; event 1 is gone from it, so resuming after 0 resyncs.
        sub = broker.subscribe(last_id=2)
        stream = broker.stream(sub)
        chunks = [await anext(stream) for _ in range(3)]
        assert b"id: 3" in chunks[1] and b"id: 4" in chunks[2]
        await stream.aclose()
        old = broker.stream(broker.subscribe(last_id=0))
        assert b"event: resync" in (await anext(old) + await anext(old))
        await old.aclose()
        # A filtered subscriber sees its transaction only; a slow one is told to resync, not buffered.
        only = broker.subscribe(txn=7)
        slow = broker.subscribe()
        for i in (6, 7, 8, 9):
            broker.publish("transaction", {"txn": {"id": i, "state": "STARTED"}})
        await asyncio.sleep(0.01)
        s = broker.stream(only)
        await anext(s)
        assert b'"id":7' in await anext(s)
        await s.aclose()
        assert slow.overflowed
        t = broker.stream(slow)
        got = b"".join([await anext(t) for _ in range(4)])
        assert b"event: resync" in got
        broker.close()
        await asyncio.sleep(0.01)
        assert b"".join([c async for c in t]) in (b"", b": ping\n\n")
        assert broker.subscribers == 0

    asyncio.run(scenario())


def test_call_schema_documents_every_procedure() -> None:
    schema = procedure_call_schema(REGISTRY)
    variants = {v["title"]: v for v in schema["oneOf"]}
    assert set(variants) == set(REGISTRY.names())
    spawn = variants["spawn_vm"]
    assert spawn["properties"]["procedure"]["enum"] == ["spawn_vm"]
    args = spawn["properties"]["args"]
    assert args["additionalProperties"] is False
    assert set(args["required"]) == {"name", "image", "vcpus", "memory_mib"}  # host, region: optional
    assert args["properties"]["vcpus"]["type"] == "integer"
