"""The one place the CLI formats results and errors, and the one table of its exit statuses: rich for
people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from typing import Any, NoReturn

from rich.console import Console
from rich.text import Text

from tropic.errors import CorruptStore, TropicError, UserError

console = Console()
err_console = Console(stderr=True)


class ExitCode(IntEnum):
    """What a ``tropic`` command's exit status means; every command uses these and only these."""

    OK = 0
    # The command ran, but the outcome is not the one asked for: a transaction did not commit, a plan
    # would be refused, drift was found (drift) or is left (reload, repair), a store is not consistent
    # (check), a workload or replay was unhealthy.
    NOT_DONE = 1
    # The request was wrong and nothing was done: a bad argument or option, an unknown procedure,
    # resource or transaction, a refusal by the server (4xx), a file that is not a tropic store.
    BAD_INPUT = 2
    UNREACHABLE = 3  # no answer from the server (not running, wrong --url)
    TIMEOUT = 124  # a --wait/--timeout ran out before the transaction was final (as timeout(1) does)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


EXIT_CODES_HELP = (
    "Exit status: 0 done; 1 ran but not done as asked (not committed, plan refused, drift found or left, "
    "store not consistent); 2 bad input or refused by the server; 3 server unreachable; "
    "124 a wait timed out; 130 interrupted."
)
WAIT_EXIT_HELP = "Exit status 0 when it commits, 1 when it ends otherwise, 124 when the wait times out first."


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(error: TropicError | str, *, code: int = ExitCode.BAD_INPUT) -> NoReturn:
    """Print a clear one-line error (never a traceback) and exit."""
    message = error.message if isinstance(error, TropicError) else error
    path = error.path if isinstance(error, TropicError) else None
    where = f" [{path}]" if path and path not in message else ""
    # A Text, not markup: a message may hold brackets (a list, a path) that rich would take for tags.
    # soft_wrap: one line however long (a script reads it whole; rich would wrap it at 80 columns).
    err_console.print(
        Text.assemble(("error:", "bold red"), f" {message}{where}"), highlight=False, soft_wrap=True
    )
    raise SystemExit(int(code))


def exit_code(error: TropicError) -> ExitCode:
    """Bad input (including a file that is not a tropic store), no answer from the server, or anything
    else that went wrong."""
    if error.code == "unreachable":  # tropic.api.client.ServerUnreachable, without loading httpx here
        return ExitCode.UNREACHABLE
    return ExitCode.BAD_INPUT if isinstance(error, UserError | CorruptStore) else ExitCode.NOT_DONE
