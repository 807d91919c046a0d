"""The knowledge base through the API and the CLI: ``GET /v1/autopilot/observations`` with its filters,
and ``tropic autopilot observations`` (table, ``--json``, ``--since``, bad input)."""

from __future__ import annotations

import json
import time

import pytest
from api_harness import VIEWER, Server
from typer.testing import CliRunner

from tropic.cli.autopilot_kb import parse_since
from tropic.cli.main import app

runner = CliRunner()
NOW = time.time()
ROWS = [
    ("/compute/us-east/host-01/vm-a", "cpu", 0.25, NOW - 7200, "utilisation"),
    ("/compute/us-east/host-01/vm-a", "cpu", 0.5, NOW - 60, "utilisation"),
    ("/compute/us-east/host-01", "memory", 0.75, NOW - 60, "utilisation"),
    ("region:us-east", "demand", 1200.0, NOW - 30, "demand"),
]


@pytest.fixture(scope="module")
def stored(server: Server) -> None:
    server.controller.store.append_observations(ROWS)


def cli(server: Server, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["autopilot", "observations", *args, "--url", server.url, "--token", VIEWER])
    return result.exit_code, result.stdout, result.stderr


def test_the_api_filters_by_subject_metric_time_and_limit(server: Server, stored: None) -> None:
    c = server.client(VIEWER)
    r = c.get("/v1/autopilot/observations")
    assert r.status_code == 200, r.text
    assert [i["value"] for i in r.json()["items"]] == [0.25, 0.5, 0.75, 1200.0]
    r = c.get(
        "/v1/autopilot/observations", params={"subject": "/compute/", "metric": "cpu", "since": NOW - 3600}
    )
    assert [(i["subject"], i["value"], i["source"]) for i in r.json()["items"]] == [
        ("/compute/us-east/host-01/vm-a", 0.5, "utilisation")
    ]
    r = c.get("/v1/autopilot/observations", params={"limit": 1})
    assert [i["metric"] for i in r.json()["items"]] == ["demand"]
    assert c.get("/v1/autopilot/observations", params={"limit": 0}).status_code == 422
    assert server.client(None).get("/v1/autopilot/observations").status_code == 401


def test_the_cli_prints_rows_as_a_table_or_json(server: Server, stored: None) -> None:
    code, out, _ = cli(server, "--subject", "region:", "--json")
    assert code == 0 and json.loads(out) == [
        {
            "subject": "region:us-east",
            "metric": "demand",
            "value": 1200.0,
            "at": ROWS[3][3],
            "source": "demand",
        }
    ]
    code, out, _ = cli(server, "--metric", "cpu", "--since", "1h")
    assert code == 0 and "vm-a" in out and "0.5" in out and "0.25" not in out
    code, out, _ = cli(server, "--subject", "nothing")
    assert code == 0 and "no observations match" in out


def test_the_cli_refuses_a_bad_since_and_says_why(server: Server) -> None:
    code, _, err = cli(server, "--since", "yesterday-ish")
    assert code == 2 and "--since 'yesterday-ish'" in err
    assert parse_since("15m", 1000.0) == 100.0
    assert parse_since("1700000000", 0.0) == 1_700_000_000.0
    assert parse_since("1970-01-01T00:01:00Z", 0.0) == 60.0


def test_the_cli_has_help() -> None:
    result = runner.invoke(app, ["autopilot", "observations", "--help"])
    assert result.exit_code == 0 and "--subject" in result.stdout and "--since" in result.stdout
