"""The README's Python block and every script in examples/ run, so the documentation cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path) -> None:
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks, "the README shows the Python API"
    for block in blocks:
        out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr


def test_readme_first_two_commands_are_make_demo_and_make_test() -> None:
    text = (REPO / "README.md").read_text()
    first_console = re.search(r"```console\n(.*?)```", text, re.S)
    assert first_console is not None
    commands = [line.split("#")[0].strip() for line in first_console.group(1).splitlines() if line.strip()]
    assert commands[:2] == ["make demo", "make test"]


INVENTORIES = sorted((REPO / "examples").glob("inventory-*.toml"))


@pytest.mark.parametrize("inventory", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_example_inventory_is_valid(inventory: Path) -> None:
    """Every example inventory passes `tropic inventory check` (served end to end in tests/inventory)."""
    assert INVENTORIES, "examples/ holds inventory files"
    out = subprocess.run(
        [sys.executable, "-m", "tropic.cli", "inventory", "check", str(inventory), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert '"valid": true' in out.stdout
