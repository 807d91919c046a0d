"""API idempotency keys on the embedded (SQLite) store survive the server: a submission made with a key,
the server SIGKILLed and restarted on the same store, and the retry with the same key gets the same
transaction (exactly one exists); a different request with that key is refused, another token's key of
the same name is its own. Keys live a TTL from their first use, and expired ones leave the store's file
in bounded passes as new ones are written."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tropic.api.idempotency import KeyReused, fingerprint
from tropic.api.store_keys import StoreKeys
from tropic.records import Transaction, key_id
from tropic.store.sqlite import SQLiteStore

TROPIC = [sys.executable, "-m", "tropic.cli"]
OPERATOR = "operator-token-0123456789abcdef"
OTHER = "other-operator-token-0123456789ab"
HOST = "/compute/us-east/host-01"
IMAGE = "/storage/us-east/san-1/img-ubuntu"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``tropic serve`` on a store, in a session of its own (so SIGKILL takes all of it)."""

    def __init__(self, tmp: Path, store: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = ["--store", str(store), "--tokens", str(tmp / "tokens.json"), "--port", str(port)]
        env = {**os.environ, "XDG_STATE_HOME": str(tmp)}
        self.proc = subprocess.Popen(
            [*TROPIC, "serve", *args, "--reconcile-interval", "0", "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"tropic serve did not start: {self.proc.communicate(timeout=30)}")
            time.sleep(0.1)

    def submit(self, body: dict[str, Any], key: str, token: str = OPERATOR) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        return httpx.post(f"{self.url}/v1/transactions", json=body, headers=headers, timeout=60)

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(60)


def stored_txns(store: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        return [(int(i), str(p)) for i, p in conn.execute("SELECT id, procedure FROM txns ORDER BY id")]
    finally:
        conn.close()


def spawn(name: str) -> dict[str, Any]:
    args = {"host": HOST, "name": name, "image": IMAGE, "vcpus": 1, "memory_mib": 512}
    return {"procedure": "spawn_vm", "args": args}


def test_a_retry_after_a_kill9_and_restart_gets_the_same_transaction(tmp_path: Path) -> None:
    tokens = [{"name": "otto", "token": OPERATOR, "role": "operator"}]
    tokens.append({"name": "ada", "token": OTHER, "role": "operator"})
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": tokens}))
    store = tmp_path / "store.db"
    server = Serve(tmp_path, store)
    try:
        first = server.submit(spawn("web-1"), "retry-1")
        assert first.status_code == 202, first.text
        txn = first.json()["id"]
    finally:
        server.kill9()
    assert server.proc.returncode == -signal.SIGKILL
    before = stored_txns(store)
    assert [t for t in before if t[1] == "spawn_vm"] == [(txn, "spawn_vm")]

    server = Serve(tmp_path, store)
    try:
        again = server.submit(spawn("web-1"), "retry-1")
        assert again.status_code == 202, again.text
        assert again.json()["id"] == txn and again.json()["replayed"] is True
        other = server.submit(spawn("web-2"), "retry-1")
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
        assert str(txn) in other.json()["error"]["message"]
        # Keys are per token: another token's key of the same name is a request of its own.
        theirs = server.submit(spawn("web-2"), "retry-1", OTHER)
        assert theirs.status_code == 202 and theirs.json()["id"] != txn
    finally:
        server.kill9()
    spawned = [t for t in stored_txns(store) if t[1] == "spawn_vm"]
    assert spawned == [(txn, "spawn_vm"), (theirs.json()["id"], "spawn_vm")]  # exactly one for "retry-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _keys(path: Path, clock: Clock, ttl: float) -> tuple[SQLiteStore, StoreKeys, list[int]]:
    store = SQLiteStore(path)
    keys = StoreKeys(store, ttl=ttl, clock=clock)
    made: list[int] = []
    return store, keys, made


def _creator(store: SQLiteStore, made: list[int]) -> Any:
    """Writes a transaction's first record with its key, as the controller does."""

    def create(binding: tuple[str, str]) -> int:
        txn = len(made) + 1 if not made else made[-1] + 1
        store.bind_key(txn, *binding)
        store.put_txn(Transaction(txn, "stop_vm", {"vm": f"/x/{txn}"}, submitter="otto"))
        store.commit()
        made.append(txn)
        return txn

    return create


def test_a_key_lives_its_ttl_across_a_reopen_then_is_new(tmp_path: Path) -> None:
    clock = Clock()
    store, keys, made = _keys(tmp_path / "s.db", clock, ttl=60)
    fp = fingerprint("stop_vm", {"vm": "/x"})
    try:
        assert keys.run("otto", "k", fp, _creator(store, made)) == (1, False)
    finally:
        store.close()
    clock.now += 59.9
    store, keys, _ = _keys(tmp_path / "s.db", clock, ttl=60)  # a restart: the key is in the file
    create = _creator(store, made)
    try:
        assert keys.run("otto", "k", fp, create) == (1, True)
        with pytest.raises(KeyReused) as e:
            keys.run("otto", "k", fingerprint("stop_vm", {"vm": "/y"}), create)
        assert e.value.txn_id == 1
        assert keys.run("ada", "k", fp, create) == (2, False)  # scoped by token
        clock.now += 0.1  # the TTL counts from the first use
        assert keys.run("otto", "k", fingerprint("stop_vm", {"vm": "/y"}), create) == (3, False)
        assert keys.run("otto", "k", fingerprint("stop_vm", {"vm": "/y"}), create) == (3, True)
        assert store.lookup_key(key_id("otto", "k")) == (3, fingerprint("stop_vm", {"vm": "/y"}))
    finally:
        store.close()


def test_expired_keys_leave_the_file_under_a_constant_load(tmp_path: Path) -> None:
    clock = Clock()
    store, keys, made = _keys(tmp_path / "s.db", clock, ttl=100)
    create = _creator(store, made)
    fp = fingerprint("stop_vm", {})
    sizes = []
    try:
        for i in range(1500):  # one key a second for 1,500 s: 100 are younger than the TTL at any time
            keys.run("otto", f"k{i}", fp, create)
            clock.now += 1
            sizes.append(len(keys))
        assert max(sizes) <= 102, max(sizes)
        assert sizes[-1] >= 99  # the young ones are all kept
        assert keys.run("otto", "k1499", fp, create)[1] is True
        assert keys.run("otto", "k0", fp, create)[1] is False
    finally:
        store.close()


def test_a_store_whose_keys_had_no_time_keeps_them_a_ttl_from_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE idempotency_keys; CREATE TABLE idempotency_keys (kid TEXT PRIMARY KEY, "
        "txn INTEGER NOT NULL, fingerprint TEXT NOT NULL) WITHOUT ROWID;"
        "INSERT INTO idempotency_keys VALUES ('kid-1', 7, 'fp');"
    )
    conn.close()
    clock = Clock()
    store = SQLiteStore(path)
    try:
        store.set_key_ttl(3600, clock)
        clock.now = time.time()
        assert store.lookup_key("kid-1") == (7, "fp")
        clock.now += 3600
        assert store.lookup_key("kid-1") is None
    finally:
        store.close()
