"""One owner per store, with real ``tropic serve`` processes: a second server on the same store is refused
naming the first; ``check`` of a live server's store runs nothing; the offline commands are refused on a
held store and work through the server with ``--url``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import IMAGE, free_port

from tropic.api.client import Client
from tropic.drivers.sim import read_devices
from tropic.model import STANDARD
from tropic.store.sqlite import read_snapshot

TROPIC = [sys.executable, "-m", "tropic.cli"]
HOSTS = [f"/compute/us-east/host-0{i}" for i in range(1, 5)]
DEVICE_DEADLINE_S = 120.0  # a worker abandons a device call after this (tropic.txn.worker.Deadlines)


def spawn(name: str, host: str) -> dict[str, Any]:
    return {"host": host, "name": name, "image": IMAGE, "vcpus": 1, "memory_mib": 512}


class Serve:
    """``tropic serve`` on a store and a free port, started and answering."""

    def __init__(self, env: dict[str, str], store: Path, port: int, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        quiet = ["--reconcile-interval", "0", "--log-level", "warning"]
        self.proc = subprocess.Popen(
            [*TROPIC, "serve", "--store", str(store), "--port", str(port), *quiet, *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"tropic serve did not start: {self.proc.communicate(timeout=30)}")
            time.sleep(0.1)
        self.pid = self.proc.pid

    def stop(self) -> None:
        """SIGTERM: the server stops cleanly (status 0), which is the restart of the tests."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=60)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The servers' and the commands' environment: a token file and an audit log of their own."""
    out = {**os.environ, "TROPIC_TOKEN_FILE": str(tmp_path / "token"), "XDG_STATE_HOME": str(tmp_path)}
    out.pop("TROPIC_TOKEN", None)
    out.pop("TROPIC_URL", None)
    return out


@pytest.fixture
def servers() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()


def tropic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TROPIC, *args], env=env, capture_output=True, text=True, timeout=600)


def client(server: Serve, tmp_path: Path) -> Client:
    return Client(server.url, (tmp_path / "token").read_text().strip())


def names_the_server(out: subprocess.CompletedProcess[str], store: Path, server: Serve) -> None:
    assert out.returncode != 0 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"store {store} is in use by tropic serve (pid {server.pid}, {server.url})" in lines[0]
    assert f"act through its API (--url {server.url})" in lines[0]


def store_contents(store: Path) -> Any:
    snap = read_snapshot(store, STANDARD)
    assert snap is not None
    return [t.to_dict() for t in snap.txns], {p: n.attrs for p, n in snap.model.nodes.items()}, snap.fenced


def test_a_second_server_on_one_store_is_refused_and_nothing_is_lost(
    tmp_path: Path, env: dict[str, str], servers: list[Serve]
) -> None:
    store = tmp_path / "s.db"
    port = free_port()
    first = Serve(env, store, port)
    servers.append(first)
    other = free_port()
    second = tropic(env, "serve", "--store", str(store), "--port", str(other), "--log-level", "warning")
    names_the_server(second, store, first)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{other}/healthz", timeout=2)
    with client(first, tmp_path) as c:  # the first one goes on serving
        ids = [int(c.submit("spawn_vm", spawn(f"keep-{i}", HOSTS[i % 4]))["id"]) for i in range(10)]
        assert [c.wait(i, timeout=300)["state"] for i in ids] == ["COMMITTED"] * 10
    first.stop()
    again = Serve(env, store, port)  # the restart
    servers.append(again)
    with client(again, tmp_path) as c:
        assert [c.transaction(i)["state"] for i in ids] == ["COMMITTED"] * 10
        for i in range(10):
            assert c.resources(f"{HOSTS[i % 4]}/keep-{i}", depth=0)["kind"] == "vm"
    live = tropic(env, "check", "--store", str(store), "--json")
    report = json.loads(live.stdout)
    assert live.returncode == 0 and report["read_only"] and report["holder"]["pid"] == again.pid
    assert report["consistent"] and report["violations"] == 0 and report["fenced"] == []
    again.stop()
    offline = tropic(env, "check", "--store", str(store), "--json")
    report = json.loads(offline.stdout)
    assert offline.returncode == 0 and not report["read_only"]
    assert report["by_state"] == {"COMMITTED": 10} and report["consistent"] and report["violations"] == 0


def test_check_of_a_live_servers_store_runs_nothing(
    tmp_path: Path, env: dict[str, str], servers: list[Serve]
) -> None:
    store = tmp_path / "s.db"
    devices = tmp_path / "s.db.devices"
    # Every device action takes longer than a worker waits for it: the started spawns stay on their
    # first step until the device deadline, and the spawns behind them stay deferred.
    server = Serve(env, store, free_port(), "--driver", "sim://?latency=100000")
    servers.append(server)
    with client(server, tmp_path) as c:
        for i in range(4):
            c.submit("spawn_vm", spawn(f"slow-{i}", HOSTS[i % 2]))

        def transactions() -> list[dict[str, Any]]:
            return [c.transaction(t["id"]) for t in c.transactions(limit=100)["items"]]

        deadline = time.monotonic() + 120
        while sorted(t["state"] for t in transactions()) != ["DEFERRED", "DEFERRED", "STARTED", "STARTED"]:
            assert time.monotonic() < deadline, transactions()
            time.sleep(0.1)
        before = transactions()
        devices_before = read_devices(devices)
        out = tropic(env, "check", "--store", str(store), "--json")
        after = transactions()
        devices_after = read_devices(devices)
        started = min(t["times"]["STARTED"] for t in before if "STARTED" in t["times"])
    # The comparison means something only inside the window where nothing else moves them.
    assert time.time() - started < DEVICE_DEADLINE_S, "the check outlasted the device deadline"
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["read_only"] is True
    assert report["holder"]["pid"] == server.pid and report["holder"]["url"] == server.url
    assert report["by_state"] == {"STARTED": 2, "DEFERRED": 2} and report["in_flight"] == 4
    assert after == before  # the server's transactions: same states, same steps
    assert devices_after.inventory() == devices_before.inventory()  # no device call by the check
    assert devices_after.applied == devices_before.applied
    assert server.proc.poll() is None


def test_rebalance_is_refused_on_a_held_store_and_works_through_the_server(
    tmp_path: Path, env: dict[str, str], servers: list[Serve]
) -> None:
    store = tmp_path / "s.db"
    filled = tropic(env, "run-workload", "--store", str(store), "--txns", "40", "--fail-rate", "0", "--json")
    assert filled.returncode == 0, filled.stderr
    server = Serve(env, store, free_port())
    servers.append(server)
    before = store_contents(store)
    names_the_server(
        tropic(env, "optimize", "rebalance", "--store", str(store), "--execute", "--json"), store, server
    )
    names_the_server(tropic(env, "run-workload", "--store", str(store), "--txns", "5"), store, server)
    assert store_contents(store) == before
    done = tropic(env, "optimize", "rebalance", "--url", server.url, "--execute", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    outcomes = result["execution"]["outcomes"]
    assert result["execution"]["ok"] and outcomes and result["url"] == server.url
    with client(server, tmp_path) as c:
        for o in outcomes:  # the server ran (and recorded) each migration
            t = c.transaction(int(o["txn_id"]))
            assert t["state"] == "COMMITTED" and t["procedure"] == o["procedure"]
    replanned = json.loads(tropic(env, "optimize", "rebalance", "--url", server.url, "--json").stdout)
    assert replanned["plan"] == []  # the target was reached
    check = tropic(env, "check", "--store", str(store), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["consistent"]


def test_run_workload_through_the_server(tmp_path: Path, env: dict[str, str], servers: list[Serve]) -> None:
    store = tmp_path / "s.db"
    server = Serve(env, store, free_port())
    servers.append(server)
    out = tropic(env, "run-workload", "--url", server.url, "--txns", "20", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert sum(result["by_state"].values()) == 20 and result["by_state"].get("COMMITTED", 0) > 0
    with client(server, tmp_path) as c:
        assert len(c.transactions(limit=100)["items"]) == 20
    both = tropic(env, "run-workload", "--store", str(store), "--url", server.url)
    neither = tropic(env, "run-workload")
    for out in (both, neither):
        assert out.returncode == 2 and "exactly one of --store" in out.stderr


def test_a_port_in_use_is_one_clear_error_and_touches_no_store(tmp_path: Path, env: dict[str, str]) -> None:
    """The API's address is bound before the store is opened: a taken port is exit 2 with one line naming
    the address, and the store that would have been created does not exist."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = tmp_path / "new.db"
        out = tropic(env, "serve", "--store", str(store), "--port", str(port), "--log-level", "warning")
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in lines[0]
    assert not store.exists() and not list(tmp_path.glob("new.db*"))
