"""ZooKeeper connection layer of the distributed store: ``zk://`` URIs, retries, started clients.

Everything above this module talks tropic errors: a malformed URI is a :class:`~tropic.errors.ConfigError`,
an ensemble that cannot be reached (or has lost its quorum) is :class:`ZooKeeperUnavailable`. kazoo's own
``NoNodeError``/``NodeExistsError`` pass through untouched; they are the store's business, not ours.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.retry import KazooRetry

from tropic.errors import ConfigError, StoreError
from tropic.retry import RetryPolicy

__all__ = [
    "CALL_RETRY",
    "COMMAND_RETRY",
    "CONNECTION_RETRY",
    "DEFAULT_PORT",
    "ZkAddress",
    "ZooKeeperUnavailable",
    "bounded_call",
    "kazoo_retry",
    "open_client",
    "parse_zk_uri",
]

DEFAULT_PORT = 2181
_EXPECTED = "expected zk://host:port[,host:port...]/chroot"
# RFC 1123 host names and dotted IPv4; IPv6 literals are written in brackets and checked separately.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_-]{1,63})*$"
)
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")
# What kazoo raises when the ensemble cannot answer (as opposed to answering "no").
_UNREACHABLE = (ConnectionLoss, ConnectionClosedError, OperationTimeoutError, SessionExpiredError)
# ... of which these are worth another attempt (kazoo reconnects, with a new session if need be); a
# closed client is not.
_TRANSIENT = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)


class ZooKeeperUnavailable(StoreError):
    """No ZooKeeper quorum could be reached in time; names the hosts that were tried."""

    code = "zookeeper_unavailable"

    def __init__(self, message: str, *, hosts: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.hosts = hosts


class ZkAddress(NamedTuple):
    """A parsed ``zk://`` URI: the ensemble's ``(host, port)`` pairs and the chroot (``"/"`` for none)."""

    hosts: tuple[tuple[str, int], ...]
    chroot: str

    @property
    def connect_string(self) -> str:
        """``host:port,host:port`` (IPv6 hosts bracketed), without the chroot."""
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)

    @property
    def kazoo_hosts(self) -> str:
        """The ``hosts`` argument of ``KazooClient``: the connect string followed by the chroot."""
        return self.connect_string + ("" if self.chroot == "/" else self.chroot)

    def __str__(self) -> str:
        return f"zk://{self.connect_string}{self.chroot}"


def parse_zk_uri(uri: str) -> ZkAddress:
    """Parse ``zk://host:port[,host:port...][/chroot]``; a missing port means 2181, a missing chroot ``/``.

    Raises :class:`~tropic.errors.ConfigError` naming the URI and what is wrong with it.
    """

    def bad(why: str) -> ConfigError:
        return ConfigError(f"malformed ZooKeeper URI {uri!r}: {why}; {_EXPECTED}")

    if not isinstance(uri, str):
        raise ConfigError(f"ZooKeeper URI must be a string, not {type(uri).__name__}; {_EXPECTED}")
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "zk":
        raise bad("the scheme must be 'zk://'")
    if any(c in rest for c in "?#"):
        raise bad("query strings and fragments are not supported")
    if "@" in rest.partition("/")[0]:
        raise bad("credentials in the URI are not supported")
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise bad("no host given")

    hosts: list[tuple[str, int]] = []
    for entry in netloc.split(","):
        host, port = _parse_host_port(entry, bad)
        if (host, port) in hosts:
            raise bad(f"host {entry!r} is listed twice")
        hosts.append((host, port))
    return ZkAddress(tuple(hosts), _parse_chroot(slash + path, bad))


def _parse_host_port(entry: str, bad: Callable[[str], ConfigError]) -> tuple[str, int]:
    if not entry:
        raise bad("empty host in the host list (stray comma?)")
    if entry != entry.strip():
        raise bad(f"host {entry!r} contains spaces")
    if entry.startswith("["):
        host, close, tail = entry[1:].partition("]")
        if not close or not host or not _IPV6.match(host):
            raise bad(f"bad IPv6 host {entry!r} (write it as [addr]:port)")
        if tail and not tail.startswith(":"):
            raise bad(f"unexpected {tail!r} after IPv6 host {entry!r}")
        port_text = tail[1:] if tail else None
    else:
        if entry.count(":") > 1:
            raise bad(f"host {entry!r} has several ':' (write IPv6 addresses as [addr]:port)")
        host, colon, port_text_raw = entry.partition(":")
        port_text = port_text_raw if colon else None
        if not host:
            raise bad(f"no host name before the port in {entry!r}")
        if not _HOSTNAME.match(host):
            raise bad(f"invalid host name {host!r}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text:
        raise bad(f"empty port after host {host!r}")
    if not port_text.isdigit():
        raise bad(f"port {port_text!r} of host {host!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} of host {host!r} is out of range 1-65535")
    return host, port


def _parse_chroot(path: str, bad: Callable[[str], ConfigError]) -> str:
    if path in ("", "/"):
        return "/"
    if path.endswith("/"):
        path = path[:-1]
    parts = path.split("/")[1:]
    for part in parts:
        if not part:
            raise bad(f"chroot {path!r} has an empty path segment")
        if part in (".", ".."):
            raise bad(f"chroot {path!r} has a relative segment {part!r}")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in part):
            raise bad(f"chroot {path!r} contains control characters")
    if parts[0] == "zookeeper":
        raise bad("the chroot may not be under /zookeeper, which ZooKeeper reserves for itself")
    return path


def kazoo_retry(policy: RetryPolicy) -> KazooRetry:
    """``policy`` in kazoo's terms, for the retries kazoo runs itself (reconnecting, ``client.retry``).
    kazoo retries its own set of errors (a lost connection, an operation timeout), whatever
    ``policy.retry_on`` says."""
    return KazooRetry(
        max_tries=-1 if policy.attempts is None else policy.attempts,
        delay=policy.backoff_s,
        backoff=policy.multiplier,
        max_jitter=policy.jitter,
        max_delay=policy.max_backoff_s,
        deadline=policy.deadline_s,
    )


# Reconnect forever (a controller must come back when the ensemble does), but never wait more than a
# second between rounds so that recovery is noticed quickly; the first connection is bounded by
# ``open_client``'s ``connect_timeout``.
CONNECTION_RETRY = RetryPolicy(attempts=None, backoff_s=0.1, max_backoff_s=1.0, jitter=0.4, deadline_s=None)
# ``client.retry(...)``: a few quick retries of an operation interrupted by a lost connection.
COMMAND_RETRY = RetryPolicy(attempts=5, backoff_s=0.1, max_backoff_s=1.0, jitter=0.4, deadline_s=10.0)
# ``bounded_call``: resend until the call's own timeout (which replaces the deadline).
CALL_RETRY = RetryPolicy(attempts=None, backoff_s=0.1, max_backoff_s=1.0, jitter=0.4, deadline_s=None)


def open_client(
    target: str | ZkAddress,
    *,
    connect_timeout: float = 10.0,
    session_timeout: float = 10.0,
    connection_retry: RetryPolicy = CONNECTION_RETRY,
    command_retry: RetryPolicy = COMMAND_RETRY,
    create_chroot: bool = True,
) -> KazooClient:
    """Return a started ``KazooClient`` for ``target`` (a ``zk://`` URI or a parsed address).

    Waits at most ``connect_timeout`` seconds for a session with a serving (quorate) server, then raises
    :class:`ZooKeeperUnavailable` naming the hosts. The chroot is created when missing (unless
    ``create_chroot`` is false), so every path the caller uses is relative to it.
    """
    address = parse_zk_uri(target) if isinstance(target, str) else target
    if connect_timeout <= 0 or session_timeout <= 0:
        raise ConfigError("ZooKeeper connect and session timeouts must be positive")
    if create_chroot and address.chroot != "/":
        _ensure_chroot(address, connect_timeout, session_timeout, connection_retry, command_retry)
    client = _start(
        address, address.kazoo_hosts, connect_timeout, session_timeout, connection_retry, command_retry
    )
    if not create_chroot and address.chroot != "/":
        try:
            exists = bounded_call(
                client, lambda: client.exists_async("/"), what="check the chroot", timeout=connect_timeout
            )
        except BaseException:
            _close(client)
            raise
        if not exists:
            _close(client)
            raise StoreError(f"ZooKeeper chroot {address.chroot} does not exist at {address.connect_string}")
    return client


def _start(
    address: ZkAddress,
    hosts: str,
    connect_timeout: float,
    session_timeout: float,
    connection_retry: RetryPolicy,
    command_retry: RetryPolicy,
) -> KazooClient:
    client = KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=kazoo_retry(connection_retry),
        # kazoo copies this policy for every client.retry(...) call
        command_retry=kazoo_retry(command_retry),
    )
    try:
        with warnings.catch_warnings():
            # kazoo warns when the chroot is missing; open_client creates it or reports it itself.
            warnings.filterwarnings("ignore", message="No chroot path exists")
            client.start(timeout=connect_timeout)
    except client.handler.timeout_exception as exc:  # start() has already stopped and closed the client
        raise ZooKeeperUnavailable(
            f"cannot connect to ZooKeeper at {address.connect_string} within {connect_timeout:g} s: "
            "no server answered with a quorum (are the servers running and is a majority up?)",
            hosts=address.connect_string,
        ) from exc
    return client


def _ensure_chroot(
    address: ZkAddress,
    connect_timeout: float,
    session_timeout: float,
    connection_retry: RetryPolicy,
    command_retry: RetryPolicy,
) -> None:
    # kazoo cannot create the ancestors of its own chroot, so a short-lived root client makes the path.
    root = _start(
        address, address.connect_string, connect_timeout, session_timeout, connection_retry, command_retry
    )
    try:
        bounded_call(
            root,
            lambda: root.ensure_path_async(address.chroot),
            what=f"create chroot {address.chroot}",
            timeout=connect_timeout,
        )
    finally:
        _close(root)


def _close(client: KazooClient) -> None:
    client.stop()
    client.close()


def bounded_call(
    client: KazooClient,
    start: Callable[[], Any],
    *,
    what: str,
    timeout: float,
    retry: RetryPolicy = CALL_RETRY,
) -> Any:
    """Run one kazoo operation and return its result, failing within ``timeout`` seconds.

    ``start`` begins the operation and returns kazoo's async result (e.g.
    ``lambda: client.create_async(path, data)``); it is started again, under ``retry`` (whose deadline
    ``timeout`` replaces), when the connection is lost before an answer. kazoo's blocking calls wait
    forever while the ensemble has no quorum; this raises :class:`ZooKeeperUnavailable` instead. The
    outcome of a write that timed out is unknown: kazoo may still send it once the ensemble recovers.
    """
    if timeout <= 0:
        raise ConfigError(f"timeout of {what} must be positive, not {timeout}")
    policy = replace(retry, deadline_s=timeout)
    stop_at = time.monotonic() + timeout
    timeout_exception = client.handler.timeout_exception

    def attempt() -> Any:
        return start().get(timeout=max(0.0, stop_at - time.monotonic()))

    hosts = ZkAddress(tuple(client.hosts), "/").connect_string
    try:
        return policy.call(attempt, retry_on=_TRANSIENT)
    except timeout_exception as exc:
        raise ZooKeeperUnavailable(
            f"ZooKeeper at {hosts} did not answer {what} within {timeout:g} s (quorum lost or servers "
            "down); the outcome is unknown",
            hosts=hosts,
        ) from exc
    except _UNREACHABLE as exc:
        raise ZooKeeperUnavailable(
            f"lost the connection to ZooKeeper at {hosts} during {what} and could not get it back "
            f"within {timeout:g} s ({type(exc).__name__}); the outcome is unknown",
            hosts=hosts,
        ) from exc
