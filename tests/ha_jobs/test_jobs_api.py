"""Jobs through the API and the CLI: ``POST/GET/DELETE /v1/jobs``, the refusal without a ZooKeeper, the
jobs' gauges on ``/metrics``, ``tropic job create|delete``, ``tropic get jobs`` and ``tropic describe``
against a real server (uvicorn in a thread)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from ha_jobs.kit import ZK, with_sleepers
from tropic.api import AuditLog, TokenStore, create_app
from tropic.cli.main import app as cli
from tropic.drivers import SimDriver
from tropic.jobs.healer import JobHealer
from tropic.model import project
from tropic.scenario import build_datacenter
from tropic.txn import Controller

OPERATOR = "operator-token-0123456789abcdef"


@dataclass
class Api:
    url: str
    app: Any
    sim: SimDriver
    controller: Controller

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=60)

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--url", self.url, "--token", OPERATOR])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    model = build_datacenter()
    sim = with_sleepers(SimDriver())
    sim.load(project(model))
    controller = Controller(model, sim).start()
    tokens = TokenStore([("otto", OPERATOR, "operator")])
    audit = AuditLog(tmp_path_factory.mktemp("audit") / "audit.jsonl", fsync=False)
    app = create_app(controller, tokens, audit)
    app.state.jobs_zk = ZK
    healer = JobHealer(controller, interval=0.05).start()
    app.state.job_healer = healer
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API server did not start"
        time.sleep(0.01)
    yield Api(f"http://127.0.0.1:{sock.getsockname()[1]}", app, sim, controller)
    server.should_exit = True
    thread.join(15)
    healer.stop()
    controller.stop()
    sim.processes.kill_all()
    audit.close()


def wait_status(c: httpx.Client, name: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        row: dict[str, Any] = c.get(f"/v1/jobs/{name}").json()
        if row.get("status") == status:
            return row
        assert time.monotonic() < deadline, row
        time.sleep(0.02)


def test_jobs_through_the_api(api: Api) -> None:
    with api.client() as c:
        r = c.post("/v1/jobs", json={"name": "web", "program": ["python3", "kv.py"], "replicas": 3})
        assert r.status_code == 200, r.text
        assert r.json()["committed"], r.json()
        row = wait_status(c, "web", "healthy")
        assert row["up"] == 3 and len({m["host"] for m in row["members"]}) == 3
        assert all(m["health"] == "running" and m["pid"] for m in row["members"])
        items = c.get("/v1/jobs").json()["items"]
        assert [i["name"] for i in items] == ["web"]

        refused = c.post(
            "/v1/jobs", json={"name": "wide", "program": "x", "replicas": 4, "failure_domain": "region"}
        ).json()
        assert not refused["committed"]
        assert refused["txn"]["error"]["constraint"] == "Job.replicas_in_distinct_domains"

        metrics = c.get("/metrics").text
        assert 'tropic_job_replicas_up{job="web"} 3.0' in metrics
        assert 'tropic_job_crash_looping{job="web"} 0.0' in metrics

        # a replica dies: the healer replaces it, the API shows the event
        api.sim.processes.kill("/jobs/web/web-1")
        deadline = time.monotonic() + 60
        while "web-4" not in {m["name"] for m in c.get("/v1/jobs/web").json()["members"]}:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        row = wait_status(c, "web", "healthy")
        assert any(e["kind"] == "replica-dead" for e in row["events"])

        assert c.get("/v1/jobs/nope").status_code == 404
        assert c.post("/v1/jobs", json={"name": "x", "program": "p", "bogus": 1}).status_code == 422
        d = c.delete("/v1/jobs/web").json()
        assert d["committed"]
        assert c.get("/v1/jobs").json()["items"] == []
    assert api.sim.replica_processes() == {}


def test_no_zookeeper_is_a_clear_refusal(api: Api) -> None:
    api.app.state.jobs_zk = None
    try:
        with api.client() as c:
            r = c.post("/v1/jobs", json={"name": "kv", "program": "p"})
        assert r.status_code == 409
        assert "--ha-zk" in r.json()["error"]["message"]
        res = api.cli("job", "create", "kv", "--program", "python3 kv.py")
        assert res.exit_code == 2 and "--ha-zk" in res.output
    finally:
        api.app.state.jobs_zk = ZK


def test_jobs_through_the_cli(api: Api) -> None:
    res = api.cli("job", "create", "cli", "--program", '["python3", "kv.py"]', "--replicas", "2", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["committed"]
    res = api.cli("get", "jobs")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].split()[:3] == ["NAME", "REPLICAS", "SERVING"]
    assert res.output.splitlines()[1].split()[0] == "cli"
    res = api.cli("get", "jobs", "-o", "json")
    assert json.loads(res.output)["items"][0]["replicas"] == 2
    res = api.cli("describe", "/jobs/cli")
    assert res.exit_code == 0, res.output
    assert "REPLICA" in res.output and "cli-1" in res.output and "cli-2" in res.output
    res = api.cli("job", "create", "cli3", "--program", "p", "--replicas", "4", "--failure-domain", "region")
    assert res.exit_code == 1 and "Job.replicas_in_distinct_domains" in res.output
    res = api.cli("job", "create", "bad", "--program", "p", "--failure-domain", "zone")
    assert res.exit_code == 2 and "host, rack or region" in res.output
    res = api.cli("job", "delete", "cli")
    assert res.exit_code == 0, res.output
    res = api.cli("job", "delete", "cli")
    assert res.exit_code == 2 and "no job /jobs/cli" in res.output


def test_the_dashboard_shows_the_jobs_panel(api: Api) -> None:
    """Headless Chromium: the panel appears with a job, lists its replicas with host, domain and health,
    and shows a killed replica's replacement."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright Python package is not installed"
    )
    chromium = Path(os.environ.get("TROPIC_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        pytest.skip(f"{chromium} is missing: run scripts/install-chromium.sh (Debian's chromium package)")
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    ]
    with api.client() as c:
        assert c.post("/v1/jobs", json={"name": "dash", "program": "python3 kv.py", "replicas": 2}).json()[
            "committed"
        ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(api.url + "/")
            page.fill("#token", OPERATOR)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#jobs-panel:not([hidden])", timeout=30_000)
            page.wait_for_selector(
                '#jobs-table tr.job[data-job="dash"][data-status="healthy"]', timeout=30_000
            )
            rows = page.inner_text("#jobs-table")
            assert "dash-1" in rows and "dash-2" in rows and "running" in rows
            api.sim.processes.kill("/jobs/dash/dash-1")
            page.wait_for_selector('#jobs-table tr.replica[data-replica="dash-3"]', timeout=30_000)
            assert not errors, errors
        finally:
            browser.close()
    with api.client() as c:
        assert c.delete("/v1/jobs/dash").json()["committed"]
