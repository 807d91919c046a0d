"""The controller as a service: REST API, live events, metrics, access control, audit log and dashboard.

``create_app(controller, tokens, audit)`` builds the FastAPI app; :class:`Client` is its Python client
(the CLI's ``submit``/``txn``/``tree`` commands are a thin shell over it). The web framework and the HTTP
client load only when one of them is used, so importing this package stays cheap for the CLI.
"""

from typing import TYPE_CHECKING, Any

from tropic.api.audit import AuditLog
from tropic.api.auth import Principal, Role, TokenStore
from tropic.api.defaults import DEFAULT_PORT, DEFAULT_URL
from tropic.api.events import EventBroker
from tropic.api.idempotency import IdempotencyCache

if TYPE_CHECKING:
    from tropic.api.app import create_app
    from tropic.api.client import ApiError, Client, RetryPolicy, ServerUnreachable

_LAZY = {
    "create_app": "tropic.api.app",
    "ApiError": "tropic.api.client",
    "Client": "tropic.api.client",
    "RetryPolicy": "tropic.api.client",
    "ServerUnreachable": "tropic.api.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tropic.api' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "ApiError",
    "AuditLog",
    "Client",
    "EventBroker",
    "IdempotencyCache",
    "Principal",
    "RetryPolicy",
    "Role",
    "ServerUnreachable",
    "TokenStore",
    "create_app",
]
