"""The command line's contract, checked on every command of the tree (walked from the typer app, so a new
command is covered as soon as it is registered): `--help` explains, an unknown option is a short usage
error (exit 2), a server that does not answer is one line naming it (exit 3), and a missing input file is
one line naming it (exit 2); never a traceback.

In-process through the real entry point (:func:`tropic.cli.main.main`, which turns errors into exit
statuses) inside typer's runner isolation; `serve` runs as a subprocess, since it would serve forever if
it did not refuse."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tropic.cli.main import app, main
from tropic.cli.output import ExitCode

TROPIC = [sys.executable, "-c", "from tropic.cli.main import main; main()"]
UNREACHABLE_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name in sorted(getattr(cmd, "commands", None) or {}):
        yield from _walk(cmd.commands[name], (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS: dict[tuple[str, ...], Any] = dict(_walk(ROOT, ()))


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path) or "tropic"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def no_traceback(self) -> None:
        assert "Traceback" not in self.stdout + self.stderr, self.stdout + self.stderr

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def tropic(*args: str, env: dict[str, str] | None = None) -> Run:
    """`tropic ARGS` through the real entry point, in-process; an exception that escapes main() is
    reported as the traceback the user would see."""
    runner = CliRunner()
    with runner.isolation(env=env) as streams:
        saved = sys.argv
        sys.argv = ["tropic", *args]
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # what escapes main() is what the user sees
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            sys.argv = saved
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return Run(code, out.decode(errors="replace"), err.decode(errors="replace"))


# --- every command: --help, an unknown option ---------------------------------------------------------------
@pytest.mark.parametrize("path", list(COMMANDS), ids=_id)
def test_help_explains(path: tuple[str, ...]) -> None:
    cmd = COMMANDS[path]
    description = (cmd.help or cmd.short_help or "").strip()
    assert description, f"`{_id(path)}` has no description"
    done = tropic(*path, "--help")
    done.no_traceback()
    assert done.code == ExitCode.OK, done.stderr
    assert "Usage:" in done.stdout
    first_words = " ".join(description.split()[:3])
    assert first_words in " ".join(done.stdout.replace("│", " ").split()), done.stdout


@pytest.mark.parametrize("path", list(COMMANDS), ids=_id)
def test_an_unknown_option_is_a_short_usage_error(path: tuple[str, ...]) -> None:
    done = tropic(*path, "--no-such-option")
    done.no_traceback()
    assert done.code == ExitCode.BAD_INPUT, (done.code, done.stdout, done.stderr)
    assert "--no-such-option" in done.stderr
    assert len(done.error_lines()) <= 8, done.stderr  # usage, hint, one boxed line


# --- an unreachable server ----------------------------------------------------------------------------------
# A value for each required argument or option of the commands that take --url, by parameter name; the
# values are well formed, so the command gets as far as asking the server.
REQUIRED_VALUES = {
    "what": "vms",
    "host": "/compute/us-east/host-01",
    "name": "kv",
    "ref": "/compute/us-east",
    "path": "/compute/us-east",
    "procedure": "spawn_vm",
    "txn_id": "1",
    "service": "kv",
    "member": "/compute/us-east/host-01/vm-1",
    "region": "us-east",
    "program": "python3 -c pass",
}
# Extra arguments a command needs to be a well-formed request at all.
EXTRA_ARGS: dict[tuple[str, ...], list[str]] = {
    ("image", "publish"): ["--digest", "sha256:" + "0" * 64, "--size-mib", "1"],
    ("member", "migrate"): ["--region", "eu-west"],
}
# Commands whose --url is checked with an input file instead (test_a_missing_input_file_is_named).
FILE_FIRST = {("inventory", "apply"), ("inventory", "plan")}


def _url_commands() -> list[tuple[str, ...]]:
    return [
        path
        for path, cmd in COMMANDS.items()
        if any(p.name == "url" for p in cmd.params) and path not in FILE_FIRST
    ]


def _required_args(path: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for p in COMMANDS[path].params:
        if not p.required:
            continue
        assert p.name in REQUIRED_VALUES, f"add a well-formed value for {p.name!r} of `{_id(path)}`"
        value = REQUIRED_VALUES[p.name]
        args += [p.opts[0], value] if p.param_type_name == "option" else [value]
    return args + EXTRA_ARGS.get(path, [])


@pytest.mark.parametrize("path", _url_commands(), ids=_id)
def test_an_unreachable_server_is_one_line_naming_it(path: tuple[str, ...], tmp_path: Path) -> None:
    env = {"TROPIC_TOKEN": "t", "XDG_STATE_HOME": str(tmp_path)}
    done = tropic(*path, *_required_args(path), "--url", UNREACHABLE_URL, env=env)
    done.no_traceback()
    assert done.code == ExitCode.UNREACHABLE, (done.code, done.stdout, done.stderr)
    errors = done.error_lines()  # nothing else: no banner, no progress bar, no blank line
    assert len(errors) == 1 and errors[0].startswith("error:") and "127.0.0.1:9" in errors[0], done.stderr
    assert done.stderr.startswith("error:"), done.stderr


# --- a missing input file -----------------------------------------------------------------------------------
# Every parameter that names an input file, with the arguments that reach it; MISSING is replaced by a path
# that does not exist. A Path-typed parameter must be listed here or in OUTPUT_PATHS (checked below).
MISSING = "{missing}"
INPUT_FILES: dict[tuple[tuple[str, ...], str], list[str]] = {
    (("autopilot", "bench"), "trace"): ["--trace", MISSING],
    (("check",), "store"): ["--store", MISSING],
    (("image", "publish"), "file"): [
        "kv",
        "--region",
        "us-east",
        "--file",
        MISSING,
        "--url",
        UNREACHABLE_URL,
    ],
    (("inventory", "apply"), "file"): [MISSING, "--url", UNREACHABLE_URL, "--yes"],
    (("inventory", "check"), "file"): [MISSING],
    (("inventory", "plan"), "file"): [MISSING, "--url", UNREACHABLE_URL],
    (("optimize", "placement"), "arrivals"): ["--arrivals", MISSING],
    (("replay",), "arrivals"): ["--arrivals", MISSING],
    (("sun",), "latency"): ["--latency", MISSING],
    (("sun",), "demand"): ["--demand", MISSING],
}
# serve's, run as a subprocess (a few seconds each); --inventory's own errors: tests/inventory.
SERVE_INPUT_FILES = {"tokens": "--tokens", "sim_trace": "--sim-trace"}
SERVE_OTHER_INPUTS = {"inventory"}
# Path-typed parameters that name something the command writes (it need not exist beforehand), or that
# other tests cover (serve's TLS files: tests/api/test_cli_conventions.py).
OUTPUT_PATHS = {
    (("bench", "soak"), "archive"),
    (("inventory", "discover"), "out"),
    (("serve",), "audit"),
    (("serve",), "archive"),
    (("serve",), "token_file"),
    (("serve",), "tls_cert"),
    (("serve",), "tls_key"),
}


def test_every_path_parameter_is_classified() -> None:
    """A new command's Path parameter is either an input (checked for a clear error when missing) or an
    output: the list above is kept complete."""
    inputs = set(INPUT_FILES) | {(("serve",), name) for name in {*SERVE_INPUT_FILES, *SERVE_OTHER_INPUTS}}
    unclassified = [
        (_id(path), p.name)
        for path, cmd in COMMANDS.items()
        for p in cmd.params
        if getattr(getattr(p, "type_descriptor", None), "annotation", None) is Path
        and (path, p.name) not in inputs | OUTPUT_PATHS
    ]
    assert not unclassified, f"classify these as INPUT_FILES or OUTPUT_PATHS: {unclassified}"


@pytest.mark.parametrize(
    ("path", "param"), list(INPUT_FILES), ids=lambda v: _id(v) if isinstance(v, tuple) else v
)
def test_a_missing_input_file_is_named(path: tuple[str, ...], param: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-dir" / f"missing-{param}.csv")
    args = [missing if a == MISSING else a for a in INPUT_FILES[(path, param)]]
    env = {"TROPIC_TOKEN": "t", "XDG_STATE_HOME": str(tmp_path)}
    done = tropic(*path, *args, env=env)
    done.no_traceback()
    assert done.code not in (ExitCode.OK, ExitCode.NOT_DONE), (done.code, done.stdout, done.stderr)
    errors = [line for line in done.error_lines() if line.startswith("error:")]
    assert len(errors) == 1 and f"missing-{param}" in errors[0], done.stderr
    assert not (tmp_path / "no-such-dir").exists(), "a missing input file was created"


@pytest.mark.parametrize("param", list(SERVE_INPUT_FILES))
def test_serve_names_a_missing_input_file_before_serving(param: str, tmp_path: Path) -> None:
    missing = tmp_path / f"missing-{param}.toml"
    try:
        done = subprocess.run(
            [*TROPIC, "serve", "--store", "memory://", "--port", "0", SERVE_INPUT_FILES[param], str(missing)],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "TROPIC_TOKEN_FILE": str(tmp_path / "token")},
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`tropic serve {SERVE_INPUT_FILES[param]} MISSING` served instead of refusing")
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode not in (ExitCode.OK, ExitCode.NOT_DONE), (done.returncode, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"missing-{param}" in errors[0], done.stderr
