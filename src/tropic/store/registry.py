"""Store URIs: the one place that resolves a URI to a store.

* ``sqlite:///path/to/store.db`` (or a plain path): the embedded store, one SQLite file;
* ``memory://``: no persistence (tests, the in-memory demo);
* ``zk://host:port[,host:port...]/chroot``: the distributed store on a ZooKeeper ensemble.

An embedded store and its simulated devices live side by side: ``store.db`` and ``store.db.devices``.
Opening an embedded store makes this process its one owner until it is closed (:mod:`tropic.owner`):
another process opening it is refused with :class:`~tropic.errors.StoreInUse` naming this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tropic.errors import ConfigError
from tropic.owner import Holder
from tropic.store.base import MemoryStore, Store

Scheme = Literal["sqlite", "memory", "zk"]
EXPECTED = (
    "sqlite:///PATH (relative; sqlite:////PATH absolute) or a plain path, "
    "zk://HOST:PORT[,...]/CHROOT or memory://"
)


@dataclass(frozen=True, slots=True)
class StoreURI:
    """A parsed store URI. ``path`` is the embedded store's file (None for ``memory://`` and ``zk://``)."""

    uri: str
    scheme: Scheme
    path: Path | None = None

    @property
    def devices(self) -> Path | None:
        """Where an embedded store's simulated devices live (None without a file)."""
        return None if self.path is None else self.path.with_name(self.path.name + ".devices")


def parse_store_uri(uri: str) -> StoreURI:
    """Parse a store URI; :class:`~tropic.errors.ConfigError` names the URI and what is wrong with it."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"empty store URI; expected {EXPECTED}")
    if uri in ("memory://", "memory"):
        return StoreURI(uri, "memory")
    if uri.startswith("zk://"):
        from tropic.store.zkclient import parse_zk_uri

        return StoreURI(str(parse_zk_uri(uri)), "zk")
    if uri.startswith("sqlite://"):
        rest = uri[len("sqlite://") :]
        if not rest or rest == "/":
            raise ConfigError(f"store URI {uri!r} names no file (expected sqlite:///path/to/store.db)")
        # As SQLAlchemy reads it: sqlite:///rel/path.db is relative, sqlite:////abs/path.db absolute.
        return StoreURI(uri, "sqlite", Path(rest[1:] if rest.startswith("/") else rest))
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ConfigError(f"unknown store URI scheme {scheme!r} in {uri!r}; expected {EXPECTED}")
    if "\0" in uri:
        raise ConfigError(f"store path {uri!r} contains a NUL character")
    return StoreURI(f"sqlite:///{uri}", "sqlite", Path(uri))


def open_store(uri: str | StoreURI, *, holder: Holder | None = None) -> Store:
    """Open the store a URI names (a ZooKeeper store with its own client). An embedded store is owned by
    this process until closed; ``holder`` says who it is (e.g. a server and its URL) to anyone refused."""
    spec = uri if isinstance(uri, StoreURI) else parse_store_uri(uri)
    if spec.scheme == "memory":
        return MemoryStore()
    if spec.scheme == "zk":
        from tropic.store.zk import ZooKeeperStore  # kazoo loads only when used

        return ZooKeeperStore(spec.uri)
    from tropic.store.sqlite import SQLiteStore

    assert spec.path is not None
    return SQLiteStore(spec.path, holder=holder)
