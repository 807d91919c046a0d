"""Defaults shared by the server and its clients: where it listens, where the local token is kept."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8470
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


def default_token_file() -> Path:
    """Where ``tropic serve`` keeps its generated admin token, and where the CLI looks for one:
    ``$TROPIC_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/tropic/token`` (``~/.config/tropic/token``)."""
    env = os.environ.get("TROPIC_TOKEN_FILE")
    return Path(env) if env else _xdg("XDG_CONFIG_HOME", ".config") / "tropic" / "token"


def default_audit_file() -> Path:
    """``$XDG_STATE_HOME/tropic/audit.jsonl`` (``~/.local/state/tropic/audit.jsonl``)."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "tropic" / "audit.jsonl"
