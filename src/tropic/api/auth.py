"""Access control of the REST API: bearer tokens, each with a name and a role.

Roles are ordered: ``viewer`` reads, ``operator`` also submits, plans and kills, ``admin`` also reads the
audit log. Tokens are kept only as SHA-256 digests and compared in constant time; a token's secret never
appears in a repr, a log line or an error message (errors name the token by its *name*).

Tokens file: JSON (a list, or ``{"tokens": [...]}``) or TOML (``[[tokens]]`` tables), each entry
``{name, token, role}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tropic.errors import ConfigError

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """True when this role has every right of ``needed``."""
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a token's name and role (never its secret)."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    digest: bytes = field(repr=False)


class TokenStore:
    """The known tokens. :meth:`authenticate` compares against every entry, in constant time each."""

    def __init__(self, entries: Iterable[tuple[str, str, Role | str]] = ()) -> None:
        self._entries: list[_Entry] = []
        for name, secret, role in entries:
            self.add(name, secret, role)

    def add(self, name: str, secret: str, role: Role | str) -> Principal:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a token entry needs a non-empty 'name'")
        if not isinstance(secret, str) or len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"token {name!r}: the token must be a string of at least {MIN_TOKEN_LENGTH} characters"
            )
        try:
            r = Role(role)
        except ValueError:
            raise ConfigError(
                f"token {name!r}: unknown role {role!r}; expected one of {[x.value for x in Role]}"
            ) from None
        if any(e.principal.name == name for e in self._entries):
            raise ConfigError(f"token name {name!r} is used twice")
        digest = _digest(secret)
        if any(hmac.compare_digest(e.digest, digest) for e in self._entries):
            raise ConfigError(f"token {name!r} has the same secret as another token")
        p = Principal(name, r)
        self._entries.append(_Entry(p, digest))
        return p

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal whose token is ``presented``, or None. Every entry is compared (no early exit),
        on fixed-length digests, so timing reveals neither which entry matched nor the token's length."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Principal | None = None
        for e in self._entries:
            if hmac.compare_digest(e.digest, digest):
                found = e.principal
        return found

    def names(self) -> list[str]:
        return [e.principal.name for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"TokenStore({', '.join(f'{e.principal.name}:{e.principal.role.value}' for e in self._entries)})"
        )

    # --- files -------------------------------------------------------------------------------------------
    @staticmethod
    def from_data(data: Any, where: str = "tokens") -> TokenStore:
        if isinstance(data, Mapping):
            data = data.get("tokens")
        if not isinstance(data, list):
            raise ConfigError(
                f"{where}: expected a list of {{name, token, role}} entries (or a 'tokens' key)"
            )
        store = TokenStore()
        for i, entry in enumerate(data):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}: entry {i} is not an object with name, token and role")
            unknown = sorted(set(entry) - {"name", "token", "role"})
            if unknown:
                raise ConfigError(f"{where}: entry {i} has unknown field(s) {unknown}")
            missing = [k for k in ("name", "token", "role") if k not in entry]
            if missing:
                raise ConfigError(f"{where}: entry {i} lacks {missing}")
            store.add(entry["name"], entry["token"], entry["role"])
        if not store:
            raise ConfigError(f"{where}: no tokens defined; the API would refuse every request")
        return store

    @staticmethod
    def load(path: str | os.PathLike[str]) -> TokenStore:
        """Read a JSON or TOML tokens file (by suffix; other suffixes: JSON, then TOML)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read tokens file {p}: {e.strerror}") from None
        data: Any
        if p.suffix == ".toml":
            data = _parse_toml(text, p)
        elif p.suffix == ".json":
            data = _parse_json(text, p)
        else:
            try:
                data = _parse_json(text, p)
            except ConfigError:
                data = _parse_toml(text, p)
        mode = p.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("tokens file %s is readable by other users; chmod 600 it", p)
        return TokenStore.from_data(data, str(p))


def _parse_json(text: str, p: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # The message names the position only: never echo the file's content (it holds secrets).
        raise ConfigError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno})") from None


def _parse_toml(text: str, p: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"{p}: not valid TOML or JSON") from None


def new_secret() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def write_secret(path: Path, secret: str) -> None:
    """Write a token to ``path``, readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
