"""An embedded ``tropic serve`` with the autopilot on, for the loop's end-to-end tests: SQLite store, the
sim driver playing a utilisation source the test sets value by value, and an explicit clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autopilot.loop_helpers import Clock
from tropic.api import AuditLog, TokenStore
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.predict import Predictor, PredictorConfig
from tropic.model import VM
from tropic.records.states import State
from tropic.service.autopilot import AutopilotSettings, play, sensed_source
from tropic.service.wiring import EmbeddedService, ServiceConfig, build_service
from tropic.txn import Controller


@dataclass
class Load:
    """What each simulated VM demands (a fraction of its vCPUs), by VM name; the rest: ``default``."""

    cpu_of: dict[str, float] = field(default_factory=dict)
    default: float = 0.02
    unread: set[str] = field(default_factory=set)  # VMs whose readings fail (their host's too)

    def cpu(self, key: str, now: float) -> float | None:
        name = key.rsplit("/", 1)[-1]
        return None if name in self.unread else self.cpu_of.get(name, self.default)


@dataclass
class Served:
    service: EmbeddedService
    load: Load
    clock: Clock

    @property
    def autopilot(self) -> Coordinator:
        assert self.service.autopilot is not None
        return self.service.autopilot

    @property
    def ctl(self) -> Controller:
        return self.service.controller

    def run(self, procedure: str, args: dict[str, Any]) -> None:
        t = self.ctl.wait(self.ctl.submit(procedure, args), 60)
        assert t.state is State.COMMITTED, (procedure, args, t.error)

    def host_of(self, name: str) -> str:
        def find() -> str:
            for p, n in self.ctl.model.nodes.items():
                if n.kind == VM.kind and p.rsplit("/", 1)[1] == name:
                    return p.rsplit("/", 1)[0]
            raise AssertionError(f"no VM {name}")

        return self.ctl.call(find)


def config(tmp_path: Path, **autopilot: Any) -> ServiceConfig:
    return ServiceConfig(
        tokens=TokenStore([("admin", "x" * 32, "admin")]),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        store=f"sqlite:///{tmp_path / 'store.db'}",
        port=0,
        reconcile_interval=0,
        autopilot=AutopilotSettings(**autopilot),
    )


def close(service: EmbeddedService) -> None:
    if service.autopilot is not None:
        service.autopilot.stop()
    service.reconciler.stop()
    service.embedded.close()
    for s in service.sockets:
        s.close()


@contextmanager
def served(
    tmp_path: Path, *, samples: int = 1, clock: Clock | None = None, **autopilot: Any
) -> Iterator[Served]:
    """A server whose autopilot predicts from the last ``samples`` readings (1: the load the test just
    set) and runs on ``clock`` (passes are driven with ``run_once`` unless the test starts the loop's
    events)."""
    autopilot.setdefault(
        "source", lambda c: sensed_source(c, predictor=Predictor(PredictorConfig(samples=samples)))
    )
    service = build_service(config(tmp_path, **autopilot))
    assert isinstance(service, EmbeddedService) and service.autopilot is not None
    try:
        clk = clock or Clock(time.time())
        service.autopilot.clock = clk
        load = Load()
        assert play(service.controller.driver, load) == 1  # type: ignore[arg-type]
        yield Served(service, load, clk)
    finally:
        close(service)


@contextmanager
def http(service: EmbeddedService) -> Iterator[str]:
    """Serve the service's API on its bound socket (as ``tropic serve`` does) for the duration; the URL."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(service.app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": service.sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{service.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
