"""CLI conventions: one clear error line (never a traceback) for bad input, exit statuses that say what
happened (one table, 124 for a wait that timed out), --version, shell completion, and --help that
explains. In-process (typer's runner) against the module's server, or as a subprocess where the entry
point itself matters (argv decoding, errors outside a command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from api_harness import OPERATOR, VIEWER, Server
from typer.testing import CliRunner

from tropic import __version__
from tropic.cli.client import parse_args
from tropic.cli.main import app
from tropic.cli.output import ExitCode
from tropic.errors import InvalidArguments

runner = CliRunner()
TROPIC = [sys.executable, "-c", "from tropic.cli.main import main; main()"]
EU_HOST = "/compute/eu-west/host-02"  # this module's own host: the server is shared by the module
EU_SPAWN = [f"host={EU_HOST}", "image=/storage/eu-west/san-1/img-ubuntu", "vcpus=1", "memory_mib=256"]


def cli(server: Server, *args: str, token: str = OPERATOR) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token])
    return result.exit_code, result.stdout, result.stderr


def run(*args: str | bytes, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [*TROPIC, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        errors="replace",
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def txn_count(server: Server) -> int:
    return len(server.controller.transactions())


# --- bad input: one line, nothing done ----------------------------------------------------------------------
def test_a_repeated_argument_is_refused(server: Server) -> None:
    before = txn_count(server)
    code, _, err = cli(server, "submit", "spawn_vm", "name=one", "name=two", *EU_SPAWN)
    assert code == ExitCode.BAD_INPUT and "'name' is given twice" in one_error_line(err)
    code, _, err = cli(server, "plan", "spawn_vm", "name=one", *EU_SPAWN, f"host={EU_HOST}")
    assert code == ExitCode.BAD_INPUT and "'host' is given twice" in err
    assert txn_count(server) == before
    with pytest.raises(InvalidArguments, match="given twice"):
        parse_args(["a=1", "a=1"])


def test_undecodable_argument_bytes_are_one_line_and_nothing_is_sent() -> None:
    done = run(b"submit", b"spawn_vm", b"host=\xff\xfe", b"name=x", env={"TROPIC_URL": "http://127.0.0.1:9"})
    assert done.returncode == ExitCode.BAD_INPUT
    line = one_error_line(done.stderr)
    assert "not valid UTF-8" in line and "\\xff\\xfe" in line
    with pytest.raises(InvalidArguments, match="not valid UTF-8"):
        parse_args(["host=\udcff\udcfe"])


@pytest.mark.parametrize(
    "url", ["http://[::1", "localhost:8080", "ftp://example.org", "http://", "http://x:99999"]
)
def test_a_malformed_url_is_one_line(url: str) -> None:
    result = runner.invoke(app, ["txn", "list", "--url", url, "--token", VIEWER])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--url" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    "path", ["../..", "/compute/us-east/host-03/..", "/compute/./us-east", "/compute//x"]
)
def test_tree_refuses_a_malformed_path_before_asking(server: Server, path: str) -> None:
    code, out, err = cli(server, "tree", path, token=VIEWER)
    assert code == ExitCode.BAD_INPUT
    line = one_error_line(err)
    assert "is not a resource path" in line and "JSON" not in line
    assert out == ""


def test_drift_reload_repair_get_the_servers_clean_answer_for_a_malformed_path(server: Server) -> None:
    for command in ("drift", "reload", "repair"):
        code, _, err = cli(server, command, "/compute/..")
        assert code == ExitCode.BAD_INPUT and "is not a resource path" in one_error_line(err), (command, err)


def test_a_store_whose_parent_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    done = run("run-workload", "--store", str(tmp_path / "file" / "x.db"), cwd=tmp_path)
    assert done.returncode == ExitCode.NOT_DONE
    assert str(tmp_path / "file") in one_error_line(done.stderr)


def test_missing_tls_files_are_one_line_before_any_banner(tmp_path: Path) -> None:
    env = {"TROPIC_TOKEN_FILE": str(tmp_path / "token"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for flags in (
        ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key")],
        ["--tls-cert", str(tmp_path / "missing.pem")],
    ):
        done = run("serve", "--store", "memory://", "--port", "0", *flags, env=env, cwd=tmp_path)
        assert done.returncode == ExitCode.BAD_INPUT
        assert "tls" in one_error_line(done.stderr).lower()
        assert "serving" not in done.stderr and "Uvicorn" not in done.stderr


def test_bad_audit_and_idempotency_options_are_one_line_before_any_banner(tmp_path: Path) -> None:
    env = {"TROPIC_TOKEN_FILE": str(tmp_path / "token"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for flags, what in (
        (["--audit-max-bytes", "0"], "audit log"),
        (["--audit-keep", "-1"], "audit log"),
        (["--idempotency-ttl", "0"], "idempotency TTL"),
        (["--idempotency-ttl", "soon"], "idempotency TTL"),
    ):
        done = run("serve", "--store", "memory://", "--port", "0", *flags, env=env, cwd=tmp_path)
        assert done.returncode == ExitCode.BAD_INPUT
        assert what in one_error_line(done.stderr)
        assert "serving" not in done.stderr and "Uvicorn" not in done.stderr


# --- exit statuses that say what happened -------------------------------------------------------------------
def test_a_wait_that_times_out_exits_124_not_1(server: Server) -> None:
    hang = server.driver.hang(EU_HOST, action="create_vm", timeout=120)
    try:
        code, out, err = cli(server, "submit", "spawn_vm", "name=slow-1", *EU_SPAWN, "--timeout", "0.3")
        assert code == ExitCode.TIMEOUT == 124, (out, err)
        assert "still" in one_error_line(err)
        txn = max(t.id for t in server.controller.transactions())
        code, _, err = cli(server, "txn", "watch", str(txn), "--timeout", "0.3", "--json", token=VIEWER)
        assert code == ExitCode.TIMEOUT, err
    finally:
        server.driver.release(hang)
    assert server.wait_final(txn, timeout=60)["state"] == "COMMITTED"
    code, _, _ = cli(server, "txn", "watch", str(txn), "--timeout", "30", "--json", token=VIEWER)
    assert code == ExitCode.OK


def test_a_refusal_is_2_and_a_failed_transaction_is_1(server: Server) -> None:
    code, _, _ = cli(server, "submit", "spawn_vm", "name=Bad_Name", *EU_SPAWN)
    assert code == ExitCode.BAD_INPUT
    code, _, _ = cli(server, "submit", "spawn_vm", "name=too-big", *EU_SPAWN[:-1], "memory_mib=99999999")
    assert code == ExitCode.NOT_DONE


def test_reload_exits_1_when_drift_is_left_and_0_when_the_model_matches(server: Server) -> None:
    code, _, _ = cli(server, "submit", "spawn_vm", "name=paused-1", *EU_SPAWN)
    assert code == ExitCode.OK
    vm = f"{EU_HOST}/paused-1"
    code, out, _ = cli(server, "reload", vm)
    assert code == ExitCode.OK and "nothing to reload" in out
    with server.driver._lock:
        server.driver.hosts[EU_HOST]["vms"]["paused-1"]["state"] = (
            "paused"  # a state the model has no word for
        )
    code, out, _ = cli(server, "reload", vm, "--json")
    assert code == ExitCode.NOT_DONE, out
    with server.driver._lock:
        server.driver.hosts[EU_HOST]["vms"]["paused-1"]["state"] = "running"
    code, _, _ = cli(server, "reload", vm)
    assert code == ExitCode.OK


def test_the_exit_status_table() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 124, 130]
    assert ExitCode.NOT_DONE == 1  # what `tropic check` exits with when the store is not consistent


# --- conventions --------------------------------------------------------------------------------------------
def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"tropic {__version__}"


def test_shell_completion_script() -> None:
    # A named shell, whatever shell runs the suite (make's recipes run under sh, which has no completion).
    done = run(env={"_TROPIC_COMPLETE": "source_bash"})
    assert done.returncode == 0, done.stderr
    assert "_TROPIC_COMPLETE=complete_bash" in done.stdout and "complete -o" in done.stdout
    # --show-completion detects the calling shell: here bash, which stays the parent (`; true`).
    shown = subprocess.run(
        ["bash", "-c", '"$@"; true', "bash", *TROPIC, "--show-completion"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "_TROPIC_COMPLETE=complete_bash" in shown.stdout, shown.stderr
    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout


def test_help_lists_the_exit_statuses() -> None:
    top = runner.invoke(app, ["--help"], terminal_width=200).stdout
    for code in ("0", "1", "2", "3", "124", "130"):
        assert f" {code} " in top.replace(";", " ")
    for command in (["submit"], ["txn", "watch"]):
        text = runner.invoke(app, [*command, "--help"], terminal_width=200).stdout
        assert "124" in text, command


def test_every_command_explains_itself_and_each_option() -> None:
    import typer.main

    def leaves(cmd: Any, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            return [leaf for name, sub in subs.items() for leaf in leaves(sub, (*prefix, name))]
        return [(prefix, cmd)]

    found = leaves(typer.main.get_command(app), ())
    assert len(found) > 15
    for path, cmd in found:
        assert cmd.help and len(cmd.help) > 30, path
        for param in cmd.params:
            assert param.param_type_name in ("option", "argument"), (path, param.name)
            assert getattr(param, "help", None), (path, param.name)
