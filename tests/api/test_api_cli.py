"""The CLI client (`tropic submit|plan|txn|tree|kill`) against a real server, and `tropic serve` itself as a
subprocess (the README tour: start the server, submit from the CLI, open the dashboard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_harness import HOST, IMAGE, OPERATOR, VIEWER, Server, free_port
from typer.testing import CliRunner

from tropic.cli.client import parse_args
from tropic.cli.main import app

runner = CliRunner()
SPAWN = [f"host={HOST}", "image=" + IMAGE, "vcpus=1", "memory_mib=512"]


def cli(server: Server, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token])
    return result.exit_code, result.stdout, result.stderr


def test_submit_waits_for_commit_and_shows_the_steps(server: Server) -> None:
    code, out, _ = cli(server, "submit", "spawn_vm", "name=cli-1", *SPAWN)
    assert code == 0, out
    assert "COMMITTED" in out and "create_vm" in out


def test_submit_json_and_txn_show_list_tree(server: Server) -> None:
    code, out, _ = cli(server, "submit", "spawn_vm", "name=007", *SPAWN, "--json")
    assert code == 0
    states = [json.loads(line) for line in out.splitlines()]
    assert states[-1]["state"] == "COMMITTED"
    txn = states[-1]["id"]
    code, out, _ = cli(server, "txn", "show", str(txn), "--json", token=VIEWER)
    detail = json.loads(out)
    assert detail["args"]["name"] == "007"  # typed by the procedure's schema: a string, not 7
    code, out, _ = cli(server, "txn", "show", str(txn), token=VIEWER)
    assert code == 0 and f"transaction {txn}" in out and "clone_image" in out
    code, out, _ = cli(server, "txn", "list", "--state", "committed", "--json", token=VIEWER)
    assert txn in [t["id"] for t in json.loads(out)["items"]]
    code, out, _ = cli(server, "txn", "list", token=VIEWER)
    assert code == 0 and "spawn_vm" in out
    code, out, _ = cli(server, "tree", HOST, "--json", token=VIEWER)
    assert f"{HOST}/007" in [c["path"] for c in json.loads(out)["children"]]
    code, out, _ = cli(server, "tree", "/compute/us-east", "--depth", "2", token=VIEWER)
    assert code == 0 and "host-01" in out and "007" in out
    code, out, _ = cli(server, "procedures", token=VIEWER)
    assert code == 0 and "spawn_vm" in out


def test_violation_exit_status_and_plan(server: Server) -> None:
    code, out, _ = cli(
        server,
        "submit",
        "spawn_vm",
        "name=big",
        f"host={HOST}",
        f"image={IMAGE}",
        "vcpus=1",
        "memory_mib=9999999",
    )
    assert code == 1 and "ABORTED" in out and "Host.memory_fits" in out
    code, out, _ = cli(
        server,
        "plan",
        "spawn_vm",
        "name=big",
        f"host={HOST}",
        f"image={IMAGE}",
        "vcpus=1",
        "memory_mib=9999999",
    )
    assert code == 1 and "Host.memory_fits" in out
    code, out, _ = cli(server, "plan", "spawn_vm", "name=small", *SPAWN, "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_errors_are_one_line_without_traceback(server: Server) -> None:
    code, _, err = cli(server, "submit", "no_such_proc", "a=1")
    assert code == 2 and "unknown procedure 'no_such_proc'" in err and "Traceback" not in err
    code, _, err = cli(server, "submit", "spawn_vm", "name=x", *SPAWN, token=VIEWER)
    assert code == 2 and "forbidden" not in err and "viewer" in err and "higher role" in err
    code, _, err = cli(server, "txn", "show", "99999", token=VIEWER)
    assert code == 2 and "no transaction 99999" in err
    code, _, err = cli(server, "tree", "/nowhere", token=VIEWER)
    assert code == 2 and "/nowhere" in err
    code, _, err = cli(server, "kill", "1")
    assert code == 2 and "already" in err
    code, _, err = cli(server, "txn", "list", token="wrong-token-wrong-token")
    assert code == 2 and "TROPIC_TOKEN" in err
    result = runner.invoke(
        app, ["txn", "list", "--url", f"http://127.0.0.1:{free_port()}", "--token", VIEWER]
    )
    assert result.exit_code == 3
    assert (
        "no answer" in result.stderr and "tropic serve" in result.stderr and "Traceback" not in result.stderr
    )


def test_command_line_values_are_sent_as_text() -> None:
    """The CLI sends ``name=value`` as text; the server types it from the procedure's declaration."""
    assert parse_args(["a=1", "b=1.5", "c=true", "d=/x", "e=007"]) == {
        "a": "1",
        "b": "1.5",
        "c": "true",
        "d": "/x",
        "e": "007",
    }


def test_tropic_serve_end_to_end(tmp_path: Path) -> None:
    """The README tour as subprocesses: `tropic serve` on a free port, then `tropic submit` with the token
    file it generated, then the dashboard page."""
    port = free_port()
    env = {
        **os.environ,
        "TROPIC_TOKEN_FILE": str(tmp_path / "token"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TROPIC_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("TROPIC_TOKEN", None)
    tropic = [sys.executable, "-c", "from tropic.cli.main import main; main()"]
    serve = subprocess.Popen(
        [*tropic, "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tropic serve did not start: {serve.communicate(timeout=5)}")
            time.sleep(0.1)
        token = (tmp_path / "token").read_text().strip()
        assert (tmp_path / "token").stat().st_mode & 0o077 == 0
        done = subprocess.run(
            [*tropic, "submit", "spawn_vm", "name=tour", *SPAWN, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["state"] == "COMMITTED"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "tropic dashboard" in page.text
        vm = httpx.get(
            f"http://127.0.0.1:{port}/v1/resources{HOST}/tour", headers={"Authorization": f"Bearer {token}"}
        )
        assert vm.status_code == 200 and vm.json()["kind"] == "vm"
    finally:
        serve.terminate()
        try:
            out, err = serve.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            serve.kill()
            out, err = serve.communicate()
            pytest.fail(f"tropic serve did not stop on SIGTERM: {err[-2000:]}")
    assert serve.returncode == 0, err
    assert token not in out + err  # the generated token is never printed or logged
    assert "admin token generated in" in err
    audit = (tmp_path / "state" / "tropic" / "audit.jsonl").read_text()
    assert '"who": "admin"' in audit and token not in audit
