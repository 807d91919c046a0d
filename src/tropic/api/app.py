"""The REST API and web dashboard of one controller, as a FastAPI app.

:func:`create_app` takes everything it serves as arguments (controller, tokens, audit log), so the same
app runs under ``tropic serve`` and in tests on a generated datacenter. Handlers that touch controller
state are plain ``def`` (run in the server's thread pool) and read through ``controller.call``, which runs
on the controller's logical thread, the model's only owner; nothing here blocks the event loop.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at runtime and
# they refer to local aliases (Viewer, Depth, ...) that only exist inside create_app.
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from tropic.api import devices, views
from tropic.api.access import Gate, GatedRoute
from tropic.api.audit import AuditLog
from tropic.api.auth import Principal, Role, TokenStore
from tropic.api.autopilot_routes import add_autopilot_routes
from tropic.api.devices import IgnoreList, PathsRequest
from tropic.api.errors import ApiProblem, error_responses, install
from tropic.api.events import EventBroker
from tropic.api.geo_routes import add_geo_routes
from tropic.api.host_routes import add_host_routes
from tropic.api.idempotency import IdempotencyCache
from tropic.api.jobs_routes import add_job_routes
from tropic.api.listing_routes import add_listing_routes
from tropic.api.metrics import CONTENT_TYPE, Metrics, Snapshot
from tropic.api.middleware import BodyLimit, SecurityHeaders
from tropic.api.models import (
    AuditEntry,
    DriftReport,
    Health,
    KillAccepted,
    PlanResult,
    ProcedureCall,
    ProcedureInfo,
    ReloadInfo,
    RepairInfo,
    RepairRequest,
    ResourceTree,
    ScopeRequest,
    StateName,
    Stats,
    TransactionDetail,
    TransactionPage,
    WhoAmI,
    batch_call_schema,
    procedure_call_schema,
)
from tropic.api.observations_routes import add_observation_routes
from tropic.api.submissions import Submitter, add_submission_routes, prepare
from tropic.errors import ConstraintViolation, TropicError
from tropic.reconcile import (
    DeviceUnreachable,
    NotRepairable,
    ReconcileError,
    Reconciler,
    Reconciliation,
    ScopeBusy,
)
from tropic.records.query import TxnQuery
from tropic.records.record import Transaction
from tropic.records.states import State
from tropic.txn.controller import Controller

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
API_VERSION = "1"


def create_app(
    controller: Controller,
    tokens: TokenStore,
    audit: AuditLog,
    *,
    events: EventBroker | None = None,
    idempotency: IdempotencyCache | None = None,
    max_body_bytes: int = 1 << 20,
    reconciler: Reconciliation | None = None,
) -> FastAPI:
    """The API and dashboard for ``controller``; requests authenticate against ``tokens`` and every
    submit/kill/reload/repair is written to ``audit``. ``reconciler`` answers drift, reload and repair
    (default: one on ``controller`` that reads the devices on demand; the caller runs periodic passes)."""
    broker = events or EventBroker()
    drift = reconciler or Reconciler(controller)
    keys = idempotency if idempotency is not None else IdempotencyCache()
    metrics = Metrics(controller)

    def on_change(t: Transaction) -> None:
        # On the logical thread after a durable state change: must not block, must not raise.
        try:
            metrics.observe(t)
            broker.publish(
                "transaction", {"txn": views.summary(t), "model_version": controller.model.version}
            )
        except Exception:
            log.exception("event listener failed for transaction %s", t.id)

    controller.subscribe(on_change)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            broker.close()

    app = FastAPI(
        title="tropic",
        version=API_VERSION,
        summary="Transactional cloud orchestration: every procedure is an ACID transaction.",
        description=(
            "Submit registered procedures as transactions, follow them to a final state, dry-run them, "
            "and read the logical model. Every endpoint except `/healthz` needs a bearer token; roles are "
            "`viewer` (read), `operator` (submit, plan, kill) and `admin` (also the audit log)."
        ),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    # Every route authenticates and authorises before FastAPI reads its body (see tropic.api.access).
    app.router.route_class = GatedRoute
    app.state.controller = controller
    app.state.events = broker
    app.state.audit = audit
    app.state.metrics = metrics
    install(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)

    allowed_query: dict[tuple[str, str], frozenset[str]] = {}

    def known_query(request: Request) -> None:
        """Refuse query parameters the endpoint does not document: a typo (``?stat=``) must not silently
        widen a listing."""
        route = request.scope.get("route")
        if not isinstance(route, APIRoute) or not request.query_params:
            return
        key = (route.path_format, request.method.lower())
        allowed = allowed_query.get(key)
        if allowed is None:
            op = app.openapi().get("paths", {}).get(key[0], {}).get(key[1], {})
            allowed = frozenset(p["name"] for p in op.get("parameters", ()) if p.get("in") == "query")
            allowed_query[key] = allowed
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "none"
            raise ApiProblem(
                422, "invalid_request", f"unknown query parameter(s) {unknown}; this endpoint takes: {takes}"
            )

    def require(role: Role, action: str | None = None) -> Gate:
        """The gate of a route: who may call it (checked before its body is read, see GatedRoute)."""
        return Gate(tokens, audit, role, action, then=known_query)

    Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
    Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
    Operator = Annotated[Principal, Depends(require(Role.OPERATOR, "submit"))]
    Killer = Annotated[Principal, Depends(require(Role.OPERATOR, "kill"))]
    Reloader = Annotated[Principal, Depends(require(Role.OPERATOR, "reload"))]
    Repairer = Annotated[Principal, Depends(require(Role.OPERATOR, "repair"))]
    Planner = Annotated[Principal, Depends(require(Role.OPERATOR))]
    auth_errors = (401, 403)
    # The documented body of a call: one variant per registered procedure, with its arguments' types.
    call_body = {
        "requestBody": {
            "content": {"application/json": {"schema": procedure_call_schema(controller.registry)}},
            "required": True,
        }
    }

    # --- service -----------------------------------------------------------------------------------------
    @app.get(
        "/healthz",
        tags=["service"],
        response_model=Health,
        responses={
            503: {"model": Health, "description": "the controller is not running"},
            **error_responses(422),
        },
        dependencies=[Depends(known_query)],
    )
    def healthz(response: Response) -> dict[str, Any]:
        """Liveness and readiness (no token needed)."""
        if controller.running:
            return {"status": "ok"}
        response.status_code = 503
        return {"status": "stopped"}

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text",
            },
            **error_responses(*auth_errors),
        },
    )
    def prometheus(who: Viewer) -> Response:
        """Prometheus text format: transactions by state, latency histogram, queue depth, deferrals,
        rollbacks."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(who: Viewer) -> dict[str, Any]:
        return app.openapi()

    @app.get("/v1/stats", tags=["service"], response_model=Stats, responses=error_responses(*auth_errors))
    def stats(who: Viewer) -> dict[str, Any]:
        """Counters and current numbers for dashboards (the JSON twin of /metrics)."""
        snap = Snapshot.take(controller)
        return {
            "counters": snap.counters,
            "states": snap.states,
            "queue_depth": snap.queue_depth,
            "in_flight": snap.in_flight,
            "model_version": snap.model_version,
            "fenced": snap.fenced,
        }

    @app.get("/v1/whoami", tags=["service"], response_model=WhoAmI, responses=error_responses(*auth_errors))
    def whoami(who: Viewer) -> dict[str, Any]:
        """The name and role of the presented token."""
        return {"name": who.name, "role": who.role.value}

    @app.get(
        "/v1/audit",
        tags=["service"],
        response_model=list[AuditEntry],
        responses=error_responses(*auth_errors),
    )
    def audit_log(who: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
        """The newest audit entries (who submitted or killed what, when), oldest first."""
        return audit.entries(limit)

    # --- transactions --------------------------------------------------------------------------------------
    batch_body = {
        "requestBody": {
            "content": {"application/json": {"schema": batch_call_schema(controller.registry)}},
            "required": True,
        }
    }
    add_submission_routes(app, Submitter(controller, keys, audit), Operator, call_body, batch_body)

    @app.get(
        "/v1/transactions",
        tags=["transactions"],
        response_model=TransactionPage,
        responses=error_responses(*auth_errors, 422),
    )
    def list_transactions(
        who: Viewer,
        state: StateName | None = None,
        procedure: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[int | None, Query(ge=1, description="only transactions with a smaller id")] = None,
        path: Annotated[
            str | None,
            Query(
                max_length=1000,
                description="only transactions that locked or named this resource, "
                "an ancestor or a descendant of it",
            ),
        ] = None,
        since: Annotated[
            float | None, Query(description="submitted at or after (seconds since the epoch)")
        ] = None,
        until: Annotated[
            float | None, Query(description="submitted before (seconds since the epoch)")
        ] = None,
    ) -> dict[str, Any]:
        """Transactions, newest first, live or final, filtered by state, procedure, resource path and
        submission time, ``limit`` a page; past ones are read from the store."""
        where = None if path is None else "/" + path.strip("/")  # as /v1/resources/ reads a path
        query = TxnQuery(
            State(state) if state is not None else None, procedure, where, since, until, before, limit + 1
        )
        page = controller.history(query)
        more = len(page) > limit
        items = [views.summary(t) for t in page[:limit]]
        return {"items": items, "next_before": items[-1]["id"] if more else None}

    @app.get(
        "/v1/transactions/{txn_id}",
        tags=["transactions"],
        response_model=TransactionDetail,
        responses=error_responses(*auth_errors, 404, 422),
    )
    def show_transaction(txn_id: int, who: Viewer) -> dict[str, Any]:
        """One transaction: state, timings, the action log, per-step outcomes (undo steps included), the
        error or violated constraint."""
        t = controller.get(txn_id)
        if t.settled:  # a final record does not change any more (and is no longer the controller's)
            return views.detail(t)
        return controller.call(lambda: views.detail(controller.get(txn_id)))

    @app.post(
        "/v1/transactions/{txn_id}/kill",
        tags=["transactions"],
        status_code=202,
        response_model=KillAccepted,
        responses=error_responses(*auth_errors, 404, 409, 422),
    )
    def kill(txn_id: int, who: Killer) -> dict[str, Any]:
        """Kill a transaction that is not final yet; a running one is rolled back after its current step."""
        try:
            t = controller.get(txn_id)
        except TropicError as e:
            audit.record(who, "kill", "refused", details={"txn": txn_id, "error": e.code})
            raise
        if t.final:
            audit.record(who, "kill", "refused", details={"txn": txn_id, "error": "already_final"})
            raise ApiProblem(409, "already_final", f"transaction {txn_id} is already {t.state.value}")
        controller.kill(txn_id)
        audit.record(who, "kill", "accepted", details={"txn": txn_id, "procedure": t.procedure})
        return {"id": txn_id, "state": t.state.value, "kill_requested": True}

    @app.post(
        "/v1/plan",
        tags=["transactions"],
        response_model=PlanResult,
        responses=error_responses(400, *auth_errors, 413, 422, 503),
        openapi_extra=call_body,
    )
    def plan(call: ProcedureCall, who: Planner) -> dict[str, Any]:
        """Dry-run: simulate and check the constraints, returning the action log apply would run and any
        violation. Nothing is changed and nothing is recorded."""
        proc, args = prepare(controller, call)
        return controller.plan(proc.name, args, checked=True).to_dict()

    @app.get(
        "/v1/events",
        tags=["transactions"],
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "SSE stream",
            },
            **error_responses(*auth_errors, 422),
        },
    )
    async def event_stream(
        who: Viewer,
        txn: Annotated[int | None, Query(description="only events of this transaction")] = None,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                max_length=20,
                pattern="^[0-9]+$",
                description="the id of the last event received: the stream resumes after it",
            ),
        ] = None,
    ) -> StreamingResponse:
        """Server-sent events: one ``transaction`` event (the transaction's summary and the model version)
        at each durable state change; ``resync`` when events were missed (reload your view)."""
        last = int(last_event_id) if last_event_id is not None else None
        sub = broker.subscribe(last_id=last, txn=txn)
        return StreamingResponse(
            broker.stream(sub),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    # --- model -------------------------------------------------------------------------------------------
    Depth = Annotated[int, Query(ge=0, le=64, description="levels of children to include")]

    @app.get(
        "/v1/resources",
        tags=["resources"],
        response_model=ResourceTree,
        responses=error_responses(*auth_errors, 422),
    )
    def resources_root(who: Viewer, depth: Depth = 1) -> dict[str, Any]:
        """The root of the logical model, with its children to ``depth``."""
        return controller.call(lambda: views.subtree(controller.model, "/", depth))

    @app.get(
        "/v1/resources/{path:path}",
        tags=["resources"],
        response_model=ResourceTree,
        responses=error_responses(*auth_errors, 404, 422),
    )
    def resources(
        path: Annotated[str, PathParam(description="a resource path without its leading slash")],
        who: Viewer,
        depth: Depth = 1,
    ) -> dict[str, Any]:
        """A subtree of the logical model: the resource's kind and attributes, its children to ``depth``."""
        model_path = views.resource_path(path)
        return controller.call(lambda: views.subtree(controller.model, model_path, depth))

    @app.get(
        "/v1/procedures",
        tags=["resources"],
        response_model=list[ProcedureInfo],
        responses=error_responses(*auth_errors),
    )
    def procedures(who: Viewer) -> list[dict[str, Any]]:
        """The registered procedures with their argument schemas (the only things a request can run)."""
        reg = controller.registry
        return [reg.get(name).to_dict() for name in reg.names()]

    # --- drift, reload, repair ----------------------------------------------------------------------------
    def reconcile_problem(e: TropicError) -> ApiProblem | TropicError:
        """Reconciliation errors as HTTP answers (other tropic errors keep their usual mapping)."""
        if isinstance(e, ConstraintViolation):
            return ApiProblem(409, e.code, e.message, path=e.path, constraint=e.constraint)
        if isinstance(e, DeviceUnreachable):
            return ApiProblem(504, e.code, e.message, path=e.path)
        if isinstance(e, ScopeBusy | NotRepairable | ReconcileError):
            return ApiProblem(409, e.code, e.message, path=e.path)
        return e

    @app.get(
        "/v1/drift",
        tags=["consistency"],
        response_model=DriftReport,
        responses=error_responses(*auth_errors, 404, 422, 503),
    )
    def get_drift(
        who: Viewer,
        path: Annotated[str, Query(min_length=1, max_length=4096, description="a resource path")] = "/",
        scan: Annotated[bool, Query(description="read the devices now (false: what is recorded)")] = True,
    ) -> dict[str, Any]:
        """Drift at or below ``path``: every resource attribute whose device differs from the model, with
        both values and when it was first seen. Drifted resources are fenced until reloaded or repaired."""
        scope = views.scope_path(path)
        try:
            items = drift.drift(scope, scan=scan)
        except TropicError as e:
            raise reconcile_problem(e) from None
        return {
            "path": scope,
            "scanned": scan,
            "items": [d.to_dict() for d in items],
            "fenced": drift.fenced(),
        }

    @app.post(
        "/v1/reload",
        tags=["consistency"],
        response_model=ReloadInfo,
        responses=error_responses(400, *auth_errors, 404, 409, 413, 422, 503, 504),
    )
    def reload(body: ScopeRequest, who: Reloader) -> dict[str, Any]:
        """Reload (device -> model): write what the devices at or below ``path`` report into the model
        (refused if that would break a constraint) and lift the fences there."""
        try:
            scope = views.scope_path(body.path)
            result = drift.reload(scope)
        except TropicError as e:
            audit.record(who, "reload", "refused", details={"path": body.path, "error": e.code})
            raise reconcile_problem(e) from None
        audit.record(who, "reload", "accepted", details={"path": scope, "changed": len(result.changed)})
        return result.to_dict()

    @app.post(
        "/v1/repair",
        tags=["consistency"],
        response_model=RepairInfo,
        responses=error_responses(400, *auth_errors, 404, 409, 413, 422, 503, 504),
    )
    def repair(body: RepairRequest, who: Repairer) -> dict[str, Any]:
        """Repair (model -> device): run compensating transactions that make the devices at or below
        ``path`` match the model, then lift the fences there once a fresh read shows them consistent."""
        try:
            scope = views.scope_path(body.path)
            result = drift.repair(scope, timeout=body.timeout, submitter=who.name)
        except TropicError as e:
            audit.record(who, "repair", "refused", details={"path": body.path, "error": e.code})
            raise reconcile_problem(e) from None
        txns = [t["id"] for t in result.transactions]
        audit.record(
            who, "repair", "accepted", details={"path": scope, "txns": txns, "consistent": result.consistent}
        )
        return result.to_dict()

    add_listing_routes(app, controller, Viewer)  # /v1/vms, /v1/hosts, /v1/regions, /v1/describe
    add_observation_routes(app, controller, Viewer)  # /v1/autopilot/observations (the knowledge base)
    add_autopilot_routes(app, Viewer, Planner, audit)  # /v1/autopilot/status|decisions|pause|resume|run-once
    add_geo_routes(app, controller, Viewer)  # /v1/images[/{name}/versions], /v1/services/{name}/members
    add_job_routes(app, controller, Viewer, Operator, audit, metrics)  # /v1/jobs, /v1/jobs/{name}
    add_host_routes(app, controller, Viewer)  # /v1/host-liveness (does a host's device answer)

    # --- the served fleet: discovery, unmanaged device objects (tropic.api.devices) ------------------------
    ignored = IgnoreList.beside(controller.store)
    if isinstance(drift, Reconciler):
        drift.ignored = ignored.covers  # ignored device objects are not drift

    @app.get("/v1/discover", tags=["devices"], responses=error_responses(*auth_errors, 422, 503, 504))
    def discover(who: Viewer) -> dict[str, Any]:
        """The inventory document of the devices this server drives, read from them and named as the
        model names them (the shape ``tropic inventory discover`` prints), with the unmanaged objects."""
        try:
            return devices.discover_served(controller, ignored)
        except TropicError as e:
            raise reconcile_problem(e) from None

    @app.get("/v1/unmanaged", tags=["devices"], responses=error_responses(*auth_errors, 422, 503, 504))
    def get_unmanaged(
        who: Viewer, all: Annotated[bool, Query(description="also list the ignored ones")] = False
    ) -> dict[str, Any]:
        """Device objects on this server's devices that the model does not know (VMs, images, volumes,
        routers), each with the path it would have in the model."""
        try:
            return devices.list_unmanaged(controller, ignored, include_ignored=all)
        except TropicError as e:
            raise reconcile_problem(e) from None

    @app.post(
        "/v1/unmanaged/adopt",
        tags=["devices"],
        responses=error_responses(400, *auth_errors, 404, 409, 413, 422, 503, 504),
    )
    def adopt(body: PathsRequest, who: Reloader) -> dict[str, Any]:
        """Adopt unmanaged objects into the model: a reload (device -> model) of each, constraint-checked
        and persisted like any change."""
        results = []
        for raw in body.paths:
            try:
                scope = views.scope_path(raw)
                result = drift.reload(scope)
            except TropicError as e:
                audit.record(who, "adopt", "refused", details={"path": raw, "error": e.code})
                raise reconcile_problem(e) from None
            audit.record(who, "adopt", "accepted", details={"path": scope, "changed": len(result.changed)})
            results.append(result.to_dict())
        return {"results": results}

    @app.post(
        "/v1/unmanaged/ignore", tags=["devices"], responses=error_responses(400, *auth_errors, 404, 413, 422)
    )
    def ignore(body: PathsRequest, who: Reloader) -> dict[str, Any]:
        """Leave these unmanaged objects alone: they are no longer listed, nor drift (a persisted list)."""
        paths = [views.scope_path(p) for p in body.paths]
        audit.record(who, "ignore", "accepted", details={"paths": paths})
        return {"ignored": ignored.add(paths)}

    # --- dashboard (a static shell without data; the data it shows comes from the API with a token) -------
    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
