"""A distributed tropic on one machine for tests and benchmarks: controller replicas (``tropic serve
--store zk://...``) and worker processes (``tropic worker``) as real processes on a loopback ZooKeeper
ensemble, a client that retries on the next replica, and the checks a run ends with."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tropic.drivers.sim_shared import SharedSimDriver
from tropic.model import STANDARD, audit, differences, orphans, project, without
from tropic.store.zk import Paths, ZooKeeperStore
from tropic.store.zkclient import open_client
from tropic.txn import FINAL
from zkharness import free_ports

TROPIC = [sys.executable, "-m", "tropic.cli"]
TOKEN = "failover-operator-token-0123456789"
KAZOO_NOISE = ("kazoo.client: Connection dropped", "kazoo.client: Transition to CONNECTING")
RETRY_CODES = {"not_leader", "zookeeper_unavailable", "controller_stopped", "store_error", "leadership_lost"}


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(60)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: nothing is left running."""
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    """``controllers`` replicas and ``workers`` worker processes on ``uri``; devices in ``dir``."""

    uri: str
    dir: Path
    controllers: int = 3
    workers: int = 2
    latency: float = 0.002
    session_timeout: float = 2.0
    worker_session_timeout: float = 3.0
    serve_options: list[str] = field(default_factory=list)  # more options for every controller
    log_level: str = os.environ.get("TROPIC_CLUSTER_LOG_LEVEL", "warning")  # debug: what each process did
    ports: list[int] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.devices = self.dir / "devices.db"
        self.driver_uri = f"sim://{self.devices}?latency={self.latency}"
        tokens = self.dir / "tokens.json"
        tokens.write_text(json.dumps([{"name": "client", "token": TOKEN, "role": "operator"}]))
        tokens.chmod(0o600)
        self.ports = free_ports(self.controllers)
        for i, port in enumerate(self.ports):
            argv = [
                *TROPIC, "serve", "--store", self.uri, "--driver", self.driver_uri, "--port", str(port),
                "--tokens", str(tokens), "--audit", str(self.dir / f"audit-c{i}.jsonl"), "--name", f"c{i}",
                "--session-timeout", str(self.session_timeout), "--log-level", self.log_level,
                *self.serve_options,
            ]  # fmt: skip
            self.procs[f"c{i}"] = Proc(f"c{i}", argv, self.dir / f"c{i}.log")
        for i in range(self.workers):
            argv = [
                *TROPIC, "worker", "--store", self.uri, "--driver", self.driver_uri, "--name", f"w{i}",
                "--session-timeout", str(self.worker_session_timeout), "--log-level", self.log_level,
            ]  # fmt: skip
            self.procs[f"w{i}"] = Proc(f"w{i}", argv, self.dir / f"w{i}.log")

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self) -> None:
        """Controllers first; workers once a leader has provisioned the devices."""
        for name, p in self.procs.items():
            if name.startswith("c"):
                p.start()
        self.leader(120)
        for name, p in self.procs.items():
            if not name.startswith("c"):
                p.start()

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()

    def leader(self, timeout: float = 60.0) -> str:
        """The name of the replica whose API answers (polling /healthz)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, url in enumerate(self.urls):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                        return f"c{i}"
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"no leader within {timeout} s:\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        """The last ``lines`` lines of each process's log, without kazoo's reconnection noise (counted)."""
        out = []
        for p in self.procs.values():
            text = p.log.read_text(errors="replace").splitlines() if p.log.exists() else []
            kept = [line for line in text if not any(n in line for n in KAZOO_NOISE)]
            noise = (
                f", {len(text) - len(kept)} kazoo reconnection lines left out"
                if len(kept) < len(text)
                else ""
            )
            out.append(
                f"--- {p.name} ({'alive' if p.alive else 'dead'}{noise}):\n" + "\n".join(kept[-lines:])
            )
        return "\n".join(out)


class FailoverClient:
    """Submits through whichever replica leads: a refused or unanswered submission is retried on the next
    replica with the same Idempotency-Key (so a retry never makes a second transaction)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.clients = [
            httpx.Client(
                base_url=u, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx.Timeout(15, connect=1)
            )
            for u in urls
        ]
        self._next = 0
        self.retries = 0
        self.replayed = 0

    def submit(self, procedure: str, args: dict[str, Any], key: str, deadline_s: float = 120.0) -> int:
        deadline = time.monotonic() + deadline_s
        while True:
            c = self.clients[self._next % len(self.clients)]
            try:
                r = c.post(
                    "/v1/transactions",
                    json={"procedure": procedure, "args": args},
                    headers={"Idempotency-Key": key},
                )
                if r.status_code == 202:
                    body = r.json()
                    self.replayed += bool(body.get("replayed"))
                    return int(body["id"])
                code = r.json().get("error", {}).get("code")
                if code not in RETRY_CODES:
                    raise AssertionError(f"submission {key} refused: {r.status_code} {r.text}")
            except httpx.TransportError:
                pass
            self.retries += 1
            self._next += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"submission {key} not accepted within {deadline_s} s")
            time.sleep(0.02)

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _kind(seed: int, i: int) -> str:
    rng = random.Random(f"{seed}:{i}:kind")
    if i < 20:
        return "spawn"
    return rng.choices(["spawn", "stop", "start", "migrate", "destroy", "huge"], [42, 8, 6, 10, 30, 4])[0]


def _place(seed: int, i: int, regions: list[str]) -> tuple[str, str]:
    rng = random.Random(f"{seed}:{i}:place")
    region = rng.choice(regions)
    return region, f"/compute/{region}/host-{rng.randint(1, 4):02d}"


def request(seed: int, i: int, regions: list[str]) -> tuple[str, dict[str, Any]]:
    """Request ``i`` of a mixed workload: spawns (some too big: refused by a constraint), and stops,
    starts, migrations and destroys of VMs spawned by recent requests (which abort in simulation when
    that VM is gone or never came: a legitimate outcome)."""
    rng = random.Random(f"{seed}:{i}")
    kind = _kind(seed, i)
    region, host = _place(seed, i, regions)
    if kind in ("spawn", "huge"):
        return "spawn_vm", {
            "host": host,
            "name": f"v{i}",
            "image": f"/storage/{region}/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 10**7 if kind == "huge" else rng.choice([256, 512]),
        }
    spawns = [j for j in range(max(0, i - 60), i) if _kind(seed, j) == "spawn"]
    j = rng.choice(spawns)
    vm_region, vm_host = _place(seed, j, regions)
    vm = f"{vm_host}/v{j}"
    if kind == "migrate":
        return "migrate_vm", {"vm": vm, "dest": f"/compute/{vm_region}/host-{rng.randint(1, 4):02d}"}
    return f"{kind}_vm", {"vm": vm}


def wait_all_final(uri: str, count: int, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        store = ZooKeeperStore(uri, read_only=True)
        try:
            restored = store.restore(STANDARD)
        finally:
            store.close()
        txns = [] if restored is None else restored.txns
        if len(txns) >= count and all(t.state in FINAL for t in txns):
            return txns
        if time.monotonic() > deadline:
            states: dict[str, int] = {}
            for t in txns:
                states[t.state.value] = states.get(t.state.value, 0) + 1
            raise AssertionError(f"not all final after {timeout} s: {len(txns)} transactions, {states}")
        time.sleep(1.0)


def verify(uri: str, devices: Path) -> dict[str, Any]:
    """The end state: every transaction final, logical == physical (except fenced), no constraint
    violated, no device step applied twice."""
    store = ZooKeeperStore(uri, read_only=True)
    try:
        restored = store.restore(STANDARD)
    finally:
        store.close()
    assert restored is not None
    sim = SharedSimDriver(devices)
    try:
        fenced = set(restored.fenced)
        logical = without(project(restored.model), fenced)
        physical = without(sim.inventory(), fenced)
        duplicates = sim.duplicates()
    finally:
        sim.close()
    states: dict[str, int] = {}
    errors: dict[str, int] = {}
    for t in restored.txns:
        states[t.state.value] = states.get(t.state.value, 0) + 1
        if t.error is not None:
            code = str(t.error.get("code"))
            errors[code] = errors.get(code, 0) + 1
    return {
        "errors": errors,
        "transactions": len(restored.txns),
        "by_state": states,
        "not_final": [t.id for t in restored.txns if t.state not in FINAL],
        "consistent": logical == physical,
        "differences": differences(logical, physical)[:10],
        "orphans": orphans(logical, physical),
        "violations": [v.to_dict() for v in audit(restored.model)],
        "duplicates": duplicates,
        "fenced": sorted(fenced),
        "ids": [t.id for t in restored.txns],
    }


class HeadWatcher:
    """Polls the store's head: when each epoch began and made its first commit (failover times)."""

    def __init__(self, uri: str) -> None:
        self.client = open_client(uri)
        self.epochs: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> HeadWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                data, _ = self.client.get(Paths.HEAD)
            except Exception:
                continue
            d = json.loads(data)
            e = self.epochs.setdefault(int(d["epoch"]), {"leader": d["leader"], "since": d["since"]})
            if d.get("first_commit") is not None:
                e["first_commit"] = d["first_commit"]

    def epoch(self) -> int:
        data, _ = self.client.get(Paths.HEAD)
        return int(json.loads(data)["epoch"])

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.client.stop()
        self.client.close()
