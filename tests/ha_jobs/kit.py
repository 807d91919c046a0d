"""What the job tests share: a controller on the sim whose replicas run a small stand-in program (until a
test needs the real replica wrapper), and reading a job's replicas back from the model."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tropic.drivers import SimDriver
from tropic.model import Host, Job, Replica
from tropic.model.jobs import domain_of
from tropic.txn import Controller, Transaction

ZK = "zk://127.0.0.1:1/unused"  # jobs whose replicas never talk to ZooKeeper (the stand-in program)
SLEEPER = "import time\nwhile True: time.sleep(1)"


def sleeper(args: Mapping[str, Any]) -> list[str]:
    """A stand-in for the replica wrapper: a process that lives until it is killed."""
    return [sys.executable, "-c", SLEEPER]


def with_sleepers(sim: SimDriver) -> SimDriver:
    sim.processes.launcher = sleeper
    return sim


def run(c: Controller, procedure: str, args: dict[str, Any]) -> Transaction:
    return c.wait(c.submit(procedure, args), 60)


def job_args(name: str = "kv", replicas: int = 3, domain: str = "host", **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "program": '["python3", "kv.py"]',
        "replicas": replicas,
        "failure_domain": domain,
        "zk": ZK,
        **more,
    }


def replicas(c: Controller, job: str) -> dict[str, str]:
    """Replica name -> host path, from the committed model."""

    def read() -> dict[str, str]:
        v = c.model.reader()
        if not v.exists(f"/jobs/{job}"):
            return {}
        return {r.name: r.host for r in v.get(f"/jobs/{job}", Job).children(Replica)}

    out: dict[str, str] = c.call(read)
    return out


def domains(c: Controller, job: str, level: str) -> list[str]:
    hosts = replicas(c, job).values()

    def read() -> list[str]:
        v = c.model.reader()
        return [domain_of(v.get(h, Host), level) for h in hosts]

    out: list[str] = c.call(read)
    return out
