"""The exit statuses documented in docs/api.md and at the end of `tropic --help` are the CLI's table."""

from __future__ import annotations

import re
from pathlib import Path

from tropic.cli.output import EXIT_CODES_HELP, ExitCode

REPO = Path(__file__).resolve().parents[2]


def test_the_documented_exit_statuses_are_the_table() -> None:
    text = (REPO / "docs" / "api.md").read_text()
    table = text.split("| status | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)]
    assert documented == [int(c) for c in ExitCode]


def test_the_help_epilog_names_every_status() -> None:
    named = [int(m) for m in re.findall(r"(?:^|; )(\d+) ", EXIT_CODES_HELP.removeprefix("Exit status: "))]
    assert named == [int(c) for c in ExitCode]
