"""The autopilot's endpoints: ``GET /v1/autopilot/status``, ``GET /v1/autopilot/decisions`` (viewer) and
``POST /v1/autopilot/pause|resume|run-once`` (operator). The coordinator is ``app.state.autopilot``, set by
the service when it runs one (``tropic serve --autopilot POLICY``); without it the GETs say it is not
enabled and the POSTs answer 409."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request

from tropic.api.audit import AuditLog
from tropic.api.errors import ApiProblem, error_responses
from tropic.autopilot.coordinator import RUN_ONCE, Coordinator

NOT_ENABLED = "the autopilot is not enabled on this server: serve with --autopilot POLICY[,POLICY...]"


def _coordinator(request: Request) -> Coordinator | None:
    c = getattr(request.app.state, "autopilot", None)
    return c if isinstance(c, Coordinator) else None


def _required(request: Request) -> Coordinator:
    c = _coordinator(request)
    if c is None:
        raise ApiProblem(409, "autopilot_disabled", NOT_ENABLED)
    return c


def add_autopilot_routes(app: FastAPI, viewer: Any, operator: Any, audit: AuditLog) -> None:
    """Register the autopilot's routes; ``viewer``/``operator``: the role gates of ``create_app``."""
    auth = (401, 403)

    @app.get("/v1/autopilot/status", tags=["autopilot"], responses=error_responses(*auth))
    def autopilot_status(request: Request, who: viewer) -> dict[str, Any]:
        """Whether the autopilot runs here, paused or not, its policies, guards, and its last decision."""
        c = _coordinator(request)
        if c is None:
            return {"enabled": False, "why": NOT_ENABLED}
        return {"enabled": True, **c.status()}

    @app.get("/v1/autopilot/decisions", tags=["autopilot"], responses=error_responses(*auth, 422))
    def autopilot_decisions(
        request: Request,
        who: viewer,
        limit: Annotated[int, Query(ge=1, le=10_000, description="the newest N decisions")] = 100,
    ) -> dict[str, Any]:
        """The newest decisions, oldest first: each pass's inputs digest, policy, predicted gain and cost,
        plan, transactions and outcomes, and why it did nothing when it did nothing."""
        c = _coordinator(request)
        if c is None:
            return {"enabled": False, "decisions": []}
        return {"enabled": True, "decisions": [d.to_dict() for d in c.decisions.recent(limit)]}

    @app.post("/v1/autopilot/pause", tags=["autopilot"], responses=error_responses(*auth, 409))
    def autopilot_pause(request: Request, who: operator) -> dict[str, Any]:
        """No periodic or event-triggered pass until resumed (run-once still runs one)."""
        c = _required(request)
        c.pause()
        audit.record(who, "autopilot-pause", "accepted")
        return {"paused": True}

    @app.post("/v1/autopilot/resume", tags=["autopilot"], responses=error_responses(*auth, 409))
    def autopilot_resume(request: Request, who: operator) -> dict[str, Any]:
        """Passes run again."""
        c = _required(request)
        c.unpause()
        audit.record(who, "autopilot-resume", "accepted")
        return {"paused": False}

    @app.post("/v1/autopilot/run-once", tags=["autopilot"], responses=error_responses(*auth, 409))
    def autopilot_run_once(request: Request, who: operator) -> dict[str, Any]:
        """Run one pass now (even while paused) and answer its decisions."""
        c = _required(request)
        audit.record(who, "autopilot-run-once", "accepted")
        return {"decisions": [d.to_dict() for d in c.run_once(RUN_ONCE)]}
