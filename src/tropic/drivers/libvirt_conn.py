"""Connections of the ``libvirt`` driver: the lazily imported binding, one lazily opened connection per
libvirt URI with its lock, private test hypervisors, and libvirt errors turned into tropic errors.

libvirt-python is imported only when a libvirt driver is created, so tropic works without it; a missing
binding is a :class:`~tropic.errors.ConfigError` that says how to install it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any
from urllib.parse import urlsplit

from tropic.errors import ConfigError, DeviceFault, DeviceTimeout, DriverError

INSTALL_HINT = (
    "install it with scripts/install-libvirt.sh (Debian libvirt-dev and pkg-config, then "
    "`pip install libvirt-python` into the venv), as `make test` does"
)

# The URI that asks for libvirt's built-in test hypervisor. Opened as is it would be one hypervisor shared
# by the whole process, so tropic gives every host mapped to it a private test hypervisor instead.
TEST_DEFAULT = "test:///default"

_binding: Any = None
_binding_lock = threading.Lock()


def load_binding() -> Any:
    """The ``libvirt`` module, imported on first use, with libvirt's stderr error printer silenced (every
    error reaches the caller as an exception instead)."""
    global _binding
    with _binding_lock:
        if _binding is None:
            try:
                import libvirt
            except ImportError as e:
                raise ConfigError(
                    f"the libvirt driver needs libvirt-python, which is not installed: {INSTALL_HINT}"
                ) from e
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _binding = libvirt
        return _binding


def native_uri(uri: str) -> str:
    """A libvirt URI from a tropic one: ``libvirt+qemu+ssh://h/system`` -> ``qemu+ssh://h/system``."""
    return uri[len("libvirt+") :] if uri.startswith("libvirt+") else uri


def is_test_uri(uri: str) -> bool:
    """libvirt's test hypervisor, in this process (``test:///default`` or ``test:///path/to/node.xml``)."""
    parts = urlsplit(uri)
    return parts.scheme == "test" and not parts.netloc


class Endpoint:
    """One libvirt connection, opened on first use and reopened when a remote one died.

    ``lock`` serialises tropic's check-then-act sequences on one hypervisor (libvirt itself is thread-safe;
    the lock keeps two workers from both seeing a pool missing and both creating it). A private test
    hypervisor keeps its whole state in its connection, so it is never reopened.
    """

    def __init__(self, uri: str, *, private: bool = False) -> None:
        self.uri = uri
        self.private = private
        self.lock = threading.RLock()
        self.domain_type = ""
        self._conn: Any = None

    @property
    def in_process(self) -> bool:
        return is_test_uri(self.uri)

    def connect(self, lv: Any, who: str) -> Any:
        """The open connection (call with ``lock`` held); ``who`` names the resource for errors."""
        conn = self._conn
        if conn is not None:
            if self.private or self.in_process:
                return conn
            try:
                if conn.isAlive() == 1:
                    return conn
            except lv.libvirtError:
                pass
            self._drop()
        try:
            conn = lv.open(self.uri)
        except lv.libvirtError as e:
            raise DriverError(
                f"libvirt: cannot connect to {who} at {self.uri}: {_message(e)}", path=who
            ) from e
        if conn is None:  # older bindings returned None instead of raising
            raise DriverError(f"libvirt: cannot connect to {who} at {self.uri}", path=who)
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may refuse to close; it is gone anyway
                conn.close()

    def close(self) -> None:
        with self.lock:
            self._drop()


def _message(err: Any) -> str:
    msg = err.get_error_message() if hasattr(err, "get_error_message") else None
    return str(msg or err)


def error_code(err: Any) -> int:
    code = err.get_error_code() if hasattr(err, "get_error_code") else None
    return int(code or 0)


def is_missing(lv: Any, err: Any) -> bool:
    """The error says the object does not exist."""
    missing = {
        getattr(lv, name, -1)
        for name in (
            "VIR_ERR_NO_DOMAIN",
            "VIR_ERR_NO_NETWORK",
            "VIR_ERR_NO_STORAGE_POOL",
            "VIR_ERR_NO_STORAGE_VOL",
            "VIR_ERR_NO_DOMAIN_METADATA",
        )
    }
    return error_code(err) in missing


def is_unsupported(lv: Any, err: Any) -> bool:
    """The hypervisor does not implement the call (or this use of it): a fallback may apply."""
    unsupported = {
        getattr(lv, name, -1)
        for name in ("VIR_ERR_NO_SUPPORT", "VIR_ERR_OPERATION_UNSUPPORTED", "VIR_ERR_ARGUMENT_UNSUPPORTED")
    }
    return error_code(err) in unsupported


def is_bad_flags(lv: Any, err: Any) -> bool:
    """An older or simpler driver refused flags it does not know (it reports an invalid argument)."""
    return error_code(err) == getattr(lv, "VIR_ERR_INVALID_ARG", -1)


def translate(lv: Any, err: Any, *, what: str, resource: str, host: str, uri: str) -> DriverError:
    """A libvirt error as a tropic error naming the host (and its URI) and the resource concerned."""
    text = f"libvirt: {what} on {host} ({uri}) failed: {_message(err)}"
    if is_missing(lv, err):
        return DriverError(text, path=resource)
    timeouts = {getattr(lv, n, -1) for n in ("VIR_ERR_OPERATION_TIMEOUT", "VIR_ERR_AGENT_UNRESPONSIVE")}
    if error_code(err) in timeouts:
        return DeviceTimeout(text, path=resource)
    return DeviceFault(text, path=resource)
