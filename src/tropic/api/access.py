"""Who may call which route of the API: the bearer-token :class:`Gate` of a route, run before the body.

FastAPI reads and validates a request body before it solves a route's dependencies, so a gate that is only
a dependency would answer a stranger's malformed body with a 400 describing it, where the answer must be
401 (or 403 for a role too low, recorded in the audit log). :class:`GatedRoute` therefore runs the route's
gate first, and FastAPI's own handling (body, then the other dependencies) only once it has passed; the
gate, declared as the route's dependency, then hands the handler the principal it already established.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tropic.api.audit import AuditLog
from tropic.api.auth import Principal, Role, TokenStore
from tropic.api.errors import ApiProblem

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from the server's tokens file: `Authorization: Bearer <token>`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

_PRINCIPAL = "tropic.principal"  # scope key: the principal a gate established for this request


class Gate:
    """The access check of one route: a valid bearer token (401), a role at least ``role`` (403, recorded
    in the audit log as a denied ``action`` when one is named), then ``then(request)`` (further checks of
    the request that must also come before its body, e.g. unknown query parameters)."""

    def __init__(
        self,
        tokens: TokenStore,
        audit: AuditLog,
        role: Role,
        action: str | None = None,
        then: Callable[[Request], None] | None = None,
    ) -> None:
        self.tokens = tokens
        self.audit = audit
        self.role = role
        self.action = action
        self.then = then

    async def __call__(self, credentials: Credentials, request: Request) -> Principal:
        """As a dependency: the principal :class:`GatedRoute` established (checked here when the route is
        of another class)."""
        who = request.scope.get(_PRINCIPAL)
        if isinstance(who, Principal):
            return who
        return await self.check(credentials, request)

    async def check(self, credentials: HTTPAuthorizationCredentials | None, request: Request) -> Principal:
        """Authenticate and authorise on the event loop (digests and comparisons: microseconds); only a
        denial, which writes the audit log, goes to the thread pool."""
        try:
            who = self.decide(credentials, request)
        except _Denied as denied:
            if self.action is not None:
                await run_in_threadpool(
                    self.audit.record, denied.who, self.action, "denied", details={"needed": self.role.value}
                )
            raise denied.problem from None
        request.scope[_PRINCIPAL] = who
        return who

    def decide(self, credentials: HTTPAuthorizationCredentials | None, request: Request) -> Principal:
        if credentials is None:
            raise ApiProblem(
                401,
                "unauthenticated",
                "this endpoint needs a bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        who = self.tokens.authenticate(credentials.credentials)
        if who is None:
            raise ApiProblem(
                401,
                "invalid_token",
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if not who.role.allows(self.role):
            raise _Denied(
                who,
                ApiProblem(
                    403,
                    "forbidden",
                    f"token {who.name!r} has role {who.role.value}; this needs {self.role.value} or higher",
                ),
            )
        if self.then is not None:
            self.then(request)
        return who


class _Denied(Exception):
    """A valid token whose role is too low: the 403 to answer, once the denial is audited."""

    def __init__(self, who: Principal, problem: ApiProblem) -> None:
        super().__init__(problem.message)
        self.who = who
        self.problem = problem


class GatedRoute(APIRoute):
    """A route whose :class:`Gate` (declared among its dependencies) runs before the request body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        gate = next((d.call for d in self.dependant.dependencies if isinstance(d.call, Gate)), None)
        if gate is None:
            return handler

        async def gated(request: Request) -> Response:
            await gate.check(await bearer(request), request)
            return await handler(request)

        return gated
