"""Store URIs resolve one way everywhere (tropic.store.registry), as SQLAlchemy reads sqlite URIs: three
slashes then a relative path, four for an absolute one; a store's own URI parses back to its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.errors import ConfigError
from tropic.store.registry import parse_store_uri
from tropic.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:///s.db", Path("s.db")),
        ("sqlite:///data/s.db", Path("data/s.db")),
        ("sqlite:////var/lib/tropic/s.db", Path("/var/lib/tropic/s.db")),
        ("s.db", Path("s.db")),
        ("/tmp/s.db", Path("/tmp/s.db")),
    ],
)
def test_sqlite_uris_name_the_file(uri: str, path: Path) -> None:
    spec = parse_store_uri(uri)
    assert spec.scheme == "sqlite" and spec.path == path
    assert spec.devices == path.with_name(path.name + ".devices")


@pytest.mark.parametrize("relative", [True, False])
def test_a_stores_own_uri_parses_back_to_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("s.db" if relative else str(tmp_path / "s.db"))
    try:
        spec = parse_store_uri(store.uri)
        assert spec.path is not None and spec.path.resolve() == (tmp_path / "s.db")
    finally:
        store.close()


@pytest.mark.parametrize("uri", ["", "sqlite://", "sqlite:///", "postgres://x/y", "a\0b"])
def test_bad_uris_are_refused_naming_what_is_expected(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_uri(uri)
    assert "sqlite" in str(info.value) or "NUL" in str(info.value) or "no file" in str(info.value)
