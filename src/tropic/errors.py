"""The one exception tree of tropic: every error a user can see derives from :class:`TropicError`.

Errors are also carried as data in transaction records (:meth:`TropicError.to_dict`), so the message a
user reads in the CLI, the API and the log is the same text.
"""

from __future__ import annotations

from typing import Any


class TropicError(Exception):
    """Root of every tropic error. ``path`` names the resource concerned, when there is one."""

    code = "error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.path is not None:
            out["path"] = self.path
        return out


# --- user errors: bad input, refused before anything changes -------------------------------------------
class UserError(TropicError):
    """The request itself is wrong; nothing was changed."""

    code = "user_error"


class UnknownProcedure(UserError):
    code = "unknown_procedure"


class InvalidArguments(UserError):
    code = "invalid_arguments"


class UnknownResource(UserError):
    code = "unknown_resource"


class ResourceExists(UserError):
    code = "resource_exists"


class AmbiguousName(InvalidArguments):
    """A name given for a resource matches several (e.g. a VM name used in two regions)."""

    code = "ambiguous_name"


class UnknownTransaction(UserError):
    code = "unknown_transaction"


class ConfigError(UserError):
    """A malformed URI, file or option."""

    code = "config_error"


# --- logical layer ----------------------------------------------------------------------------------------
class ModelError(TropicError):
    """A procedure asked the logical model for something impossible (e.g. start a running VM)."""

    code = "model_error"


class NoHostFits(ModelError):
    """A procedure asked to choose a host found none that can take the VM; the message counts why."""

    code = "no_host_fits"


class ConstraintViolation(TropicError):
    """A safety constraint of a resource would be broken; the transaction is aborted before any device."""

    code = "constraint_violation"

    def __init__(self, message: str, *, path: str, constraint: str) -> None:
        super().__init__(message, path=path)
        self.constraint = constraint

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["constraint"] = self.constraint
        return out


class FencedResource(TropicError):
    """The resource is fenced (left behind by a FAILED transaction or drifted) until repaired."""

    code = "fenced"


class IllegalTransition(TropicError):
    code = "illegal_transition"


class TransactionKilled(TropicError):
    """An operator or the watchdog killed the transaction."""

    code = "killed"


class ControllerStopped(TropicError):
    """The controller is not running (or is shutting down) and cannot take work."""

    code = "controller_stopped"


# --- physical layer ---------------------------------------------------------------------------------------
class DriverError(TropicError):
    """A device refused or failed an action."""

    code = "driver_error"


class DeviceFault(DriverError):
    """An injected or real device failure of one physical step."""

    code = "device_fault"


class DeviceTimeout(DriverError):
    code = "device_timeout"


# --- cross-layer consistency (drift, reload, repair) -----------------------------------------------------
class ReconcileError(TropicError):
    """Reload or repair could not do what was asked; nothing was changed unless the message says so."""

    code = "reconcile_error"


class NotRepairable(ReconcileError):
    """No compensating procedure can make the device match the model (e.g. a vanished image): reload it."""

    code = "not_repairable"


class ScopeBusy(ReconcileError):
    """Transactions kept changing the resources to reload; try again when they are done."""

    code = "busy"


class DeviceUnreachable(DeviceTimeout):
    """A device did not answer a read within the reconciler's deadline."""

    code = "device_unreachable"


# --- policies ----------------------------------------------------------------------------------------------


# --- persistence ------------------------------------------------------------------------------------------
class StoreError(TropicError):
    code = "store_error"


class CorruptStore(StoreError):
    """The file is not a tropic store or is damaged; it is left untouched."""

    code = "corrupt_store"


class StoreInUse(StoreError):
    """Another process owns the store (or its devices file) and is its only writer; nothing was changed.
    ``holder`` says who, as plain data (pid, host, command, started, and a server's url), when known."""

    code = "store_in_use"

    def __init__(
        self, message: str, *, path: str | None = None, holder: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, path=path)
        self.holder = holder

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.holder is not None:
            out["holder"] = dict(self.holder)
        return out


def error_from_dict(data: dict[str, Any]) -> TropicError:
    """Rebuild an error carried as data (e.g. read back from a durable store)."""
    code = str(data.get("code", "error"))
    message = str(data.get("message", ""))
    path = data.get("path")
    if code == ConstraintViolation.code:
        return ConstraintViolation(message, path=str(path), constraint=str(data.get("constraint", "")))
    for cls in _ALL:
        if cls.code == code:
            return cls(message, path=None if path is None else str(path))
    return TropicError(message, path=None if path is None else str(path))


_ALL: tuple[type[TropicError], ...] = (
    UserError,
    UnknownProcedure,
    InvalidArguments,
    UnknownResource,
    ResourceExists,
    UnknownTransaction,
    ConfigError,
    ModelError,
    FencedResource,
    IllegalTransition,
    TransactionKilled,
    ControllerStopped,
    DriverError,
    DeviceFault,
    DeviceTimeout,
    StoreError,
    CorruptStore,
    StoreInUse,
    ReconcileError,
    NotRepairable,
    ScopeBusy,
    DeviceUnreachable,
)
