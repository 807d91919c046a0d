"""Host liveness: ``GET /v1/host-liveness?host=PATH`` (viewer) answers whether a compute host's device
answers, as its driver tells (``alive``: true, false, or null when the driver cannot tell), beside the
model's record of it (``failed``: declared dead; ``cordoned``; ``powered``).

``tropic host evacuate`` asks it to choose between live migration (the host answers) and rebuilding the
VMs elsewhere (it does not). The device is read outside the controller's logical thread."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
from typing import Annotated, Any

from fastapi import FastAPI, Query

from tropic.api.errors import ApiProblem, error_responses
from tropic.model import Host, Node
from tropic.txn import Controller

HostQuery = Annotated[str, Query(min_length=2, max_length=1000, description="the host's path")]


def _copy(node: Node | None) -> Node | None:
    return None if node is None else node.copy()


def host_liveness(controller: Controller, host: str) -> dict[str, Any]:
    """The answer of ``GET /v1/host-liveness`` (see the module docstring)."""
    node = controller.call(lambda: _copy(controller.model.nodes.get(host)))
    if node is None:
        raise ApiProblem(404, "unknown_resource", f"no resource at {host}")
    if node.kind != Host.kind:
        raise ApiProblem(422, "not_a_host", f"{host} is a {node.kind}, not a host")
    alive = controller.driver.host_alive(host)  # a router asks the host's backend
    attrs = node.attrs
    return {
        "host": host,
        "alive": alive,
        "failed": bool(attrs.get("failed", False)),
        "cordoned": bool(attrs.get("cordoned", False)),
        "powered": bool(attrs.get("powered", True)),
    }


def add_host_routes(app: FastAPI, controller: Controller, viewer: Any) -> None:
    """Register the host liveness route; ``viewer``: the role gate of ``create_app``."""

    @app.get("/v1/host-liveness", tags=["hosts"], responses=error_responses(401, 403, 404, 422))
    def get_host_liveness(who: viewer, host: HostQuery) -> dict[str, Any]:
        """Does the host's device answer (``alive``: true, false, null when its driver cannot tell), and
        is it declared failed, cordoned, powered in the model."""
        return host_liveness(controller, host)
