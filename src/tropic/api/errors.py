"""How the API reports errors: every failure is JSON ``{"error": {"code", "message", ...}}``.

User errors map to 4xx by kind (bad JSON 400, no/invalid token 401, role too low 403, unknown thing 404,
conflict 409, too large 413, invalid request 422); a stopped controller is 503. Anything unexpected is a
500 with a fixed message: the traceback goes to the server log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from tropic.api.models import ErrorBody
from tropic.errors import (
    ConfigError,
    ControllerStopped,
    InvalidArguments,
    ResourceExists,
    StoreError,
    TropicError,
    UnknownProcedure,
    UnknownResource,
    UnknownTransaction,
    UserError,
)

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """An API-level refusal with its HTTP status (authentication, conflicts, limits)."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


# Most specific first: the first class an error is an instance of decides the status.
_STATUS: tuple[tuple[type[TropicError], int], ...] = (
    (UnknownTransaction, 404),
    (UnknownResource, 404),
    (UnknownProcedure, 422),
    (InvalidArguments, 422),
    (ResourceExists, 409),
    (ConfigError, 400),
    (UserError, 400),
    (ControllerStopped, 503),
    (StoreError, 503),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


def status_of(error: TropicError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"code": code, "message": message}
    info.update({k: v for k, v in extra.items() if v is not None})
    return {"error": info}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses."""
    return {
        s: {"model": ErrorBody, "description": _HTTP_CODES.get(s, "error").replace("_", " ")}
        for s in statuses
    }


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in exc.errors():
        # Keep only plain fields: "input" and "ctx" may hold arbitrary objects (and echo secrets).
        loc = [x if isinstance(x, int) else str(x) for x in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the first route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                methods |= route.methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return JSONResponse(body(exc.code, exc.message, **exc.extra), exc.status, headers=exc.headers)

    async def on_tropic(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TropicError)
        status = status_of(exc)
        if status == 500:
            log.error("unexpected %s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return JSONResponse({"error": exc.to_dict()}, status)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = _problems(exc)
        if any(p["type"] == "json_invalid" for p in problems):
            return JSONResponse(
                body("malformed_json", "the request body is not valid JSON", problems=problems), 400
            )
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        return JSONResponse(body("invalid_request", message, problems=problems), 422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = exc.headers
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request)
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return JSONResponse(body(code, message), exc.status_code, headers=headers)

    async def on_anything(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(body("internal", "internal server error (details are in the server log)"), 500)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(TropicError, on_tropic)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_anything)
