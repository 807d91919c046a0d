"""Follow-the-sun reads: ``GET /v1/images`` (the image catalog), ``GET /v1/images/{name}/versions`` (an
image's versions, where each is replicated and what keeps it in use) and ``GET /v1/services/{name}/members``
(a replicated service's members with their public addresses). Changes go through ordinary transactions
(``open_image_write``, ``close_image_write``, ``gc_image``, ``migrate_member``...) on ``/v1/transactions``."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import BaseModel

from tropic.api import geo_views
from tropic.api.errors import error_responses
from tropic.txn.controller import Controller

NamePath = Annotated[str, Path(min_length=1, max_length=63, description="a name (DNS label)")]


class Rows(BaseModel):
    items: list[dict[str, Any]]


def add_geo_routes(app: FastAPI, controller: Controller, Viewer: Any) -> None:
    """Register the catalog and member reads on ``app`` (viewer role)."""

    @app.get("/v1/images", tags=["geo"], response_model=Rows, responses=error_responses(401, 403))
    def images(who: Viewer) -> dict[str, Any]:
        """Every image of the catalog: latest version, policy, writer, how many versions."""
        return {"items": controller.call(lambda: geo_views.catalog(controller.model))}

    @app.get(
        "/v1/images/{name}/versions",
        tags=["geo"],
        response_model=Rows,
        responses=error_responses(401, 403, 404, 422),
    )
    def image_versions(who: Viewer, name: NamePath) -> dict[str, Any]:
        """An image's versions, oldest first: digest, size, replicas per region, readers, in use."""
        return {"items": controller.call(lambda: geo_views.versions(controller.model, name))}

    @app.get(
        "/v1/services/{name}/members",
        tags=["geo"],
        response_model=Rows,
        responses=error_responses(401, 403, 404, 422),
    )
    def members(who: Viewer, name: NamePath) -> dict[str, Any]:
        """A service's members: VM, region, location, provider, host, state and public address."""
        return {"items": controller.call(lambda: geo_views.members_of(controller.model, f"/services/{name}"))}
