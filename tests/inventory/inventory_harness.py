"""``tropic serve --inventory`` processes for the inventory tests, and the CLI run as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TROPIC = [sys.executable, "-m", "tropic.cli"]
REPO = Path(__file__).resolve().parents[2]
SIM = REPO / "examples" / "inventory-sim.toml"
LIBVIRT = REPO / "examples" / "inventory-libvirt.toml"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(tmp_path: Path) -> dict[str, str]:
    """A token file and an audit log of the test's own."""
    out = {**os.environ, "TROPIC_TOKEN_FILE": str(tmp_path / "token"), "XDG_STATE_HOME": str(tmp_path)}
    out.pop("TROPIC_TOKEN", None)
    out.pop("TROPIC_URL", None)
    return out


def tropic(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TROPIC, *args], env=env, capture_output=True, text=True, timeout=timeout)


class Serve:
    """``tropic serve --inventory FILE`` on a store and a free port, started and answering."""

    def __init__(self, env: dict[str, str], store: Path, *extra: str) -> None:
        port = free_port()
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

    def stop(self) -> None:
        """SIGTERM: the server stops cleanly with status 0."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=60)
