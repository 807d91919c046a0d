"""``GET /v1/autopilot/observations``: the autopilot's knowledge base, read from the controller's store
(what the sensors read, newest ``limit`` rows, oldest first). Read off the logical thread: the store's
readers never wait for the controller."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
from typing import Annotated, Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from tropic.api.errors import error_responses
from tropic.store.observations import MAX_LIMIT
from tropic.txn.controller import Controller

DEFAULT_LIMIT = 1000
API_MAX = min(MAX_LIMIT, 100_000)


class ObservationRow(BaseModel):
    subject: str = Field(description="a resource path, or a key such as region:us-east")
    metric: str = Field(description="cpu, memory (fractions 0..1), demand, latency_ms, price, ...")
    value: float
    at: float = Field(description="when it was read (Unix seconds)")
    source: str = Field(description="the sensor that read it")


class ObservationPage(BaseModel):
    items: list[ObservationRow]


def add_observation_routes(app: FastAPI, controller: Controller, Viewer: Any) -> None:
    """Register the knowledge-base query on ``app`` (viewer role)."""

    @app.get(
        "/v1/autopilot/observations",
        tags=["autopilot"],
        response_model=ObservationPage,
        responses=error_responses(401, 403, 422),
    )
    def observations(
        who: Viewer,
        subject: Annotated[
            str, Query(max_length=1000, description="subject prefix (a path such as /compute/r1/, region:)")
        ] = "",
        metric: Annotated[str | None, Query(max_length=100, description="only this metric")] = None,
        since: Annotated[float | None, Query(ge=0, description="from this time (Unix seconds)")] = None,
        until: Annotated[float | None, Query(ge=0, description="before this time (Unix seconds)")] = None,
        limit: Annotated[
            int, Query(ge=1, le=API_MAX, description="the newest this many rows")
        ] = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """Readings the sensors stored, the newest ``limit`` matching, oldest first (``since`` inclusive,
        ``until`` exclusive)."""
        if since is not None and until is not None and until < since:
            return {"items": []}  # an empty window matches nothing
        rows = controller.store.observations(subject, metric, since, until, limit)
        keys = ("subject", "metric", "value", "at", "source")
        return {"items": [dict(zip(keys, r, strict=True)) for r in rows]}
