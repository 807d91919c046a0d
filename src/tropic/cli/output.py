"""The one place the CLI formats results and errors: rich for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

from tropic.errors import CorruptStore, TropicError, UserError

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(error: TropicError | str, *, code: int = 2) -> NoReturn:
    """Print a clear one-line error (never a traceback) and exit."""
    message = error.message if isinstance(error, TropicError) else error
    path = error.path if isinstance(error, TropicError) else None
    where = f" [{path}]" if path and path not in message else ""
    # soft_wrap: one line however long (a script reads it whole; rich would wrap it at 80 columns).
    err_console.print(f"[bold red]error:[/] {message}{where}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def exit_code(error: TropicError) -> int:
    """2 for bad input (including a file that is not a tropic store), 1 for everything else."""
    return 2 if isinstance(error, UserError | CorruptStore) else 1
