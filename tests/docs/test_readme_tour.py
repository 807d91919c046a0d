"""The README's service tour runs exactly as written: its console block, command by command, in a fresh
folder holding a copy of examples/ (only the program's path and the server's port differ: `tropic` is
this interpreter's, and the server takes a free port instead of 8470)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
TROPIC = [sys.executable, "-m", "tropic.cli"]


def tour_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("**4. The service") :]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None, "the README's service tour has a console block"
    joined = block.group(1).replace("\\\n", " ")
    return [line.split("#")[0].strip() for line in joined.splitlines() if line.split("#")[0].strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_service_tour_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    port = free_port()
    env = {**os.environ, "TROPIC_TOKEN_FILE": str(tmp_path / "token"), "XDG_STATE_HOME": str(tmp_path)}
    env["TROPIC_URL"] = f"http://127.0.0.1:{port}"
    env.pop("TROPIC_TOKEN", None)
    commands = tour_commands()
    first = commands[0]
    assert first.startswith(".venv/bin/tropic serve") and first.endswith("&"), first
    serve = shlex.split(first.removesuffix("&"))[1:]
    server = subprocess.Popen(
        [*TROPIC, *serve, "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.communicate(timeout=30)
            time.sleep(0.1)
        outputs = []
        for command in commands[1:]:
            argv = shlex.split(command)
            assert argv[0] == ".venv/bin/tropic", command
            out = subprocess.run(
                [*TROPIC, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
            )
            assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
            outputs.append(out.stdout)
        by = dict(zip(commands[1:], outputs, strict=True))
        listing = next(out for cmd, out in by.items() if " get vms" in cmd)
        assert "web-2" in listing and "web-1" in listing  # the file's VM and the one placed by the service
        drain = next(out for cmd, out in by.items() if " host drain " in cmd)
        assert "/compute/us-east/kvm-1 drained" in drain, drain
        assert (tmp_path / "tropic.db").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
