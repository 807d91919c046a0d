"""Replicated jobs' endpoints: ``GET /v1/jobs``, ``GET /v1/jobs/{name}`` (viewer), ``POST /v1/jobs`` and
``DELETE /v1/jobs/{name}`` (operator), and the jobs' gauges on ``/metrics``.

The service sets ``app.state.job_healer`` (the healing loop of the controller that leads) and
``app.state.jobs_zk`` (the ZooKeeper holding the jobs' request logs: ``--ha-zk``, or the controllers'
own ensemble in distributed mode). Without a ZooKeeper a job cannot be created: ``POST`` answers 409
saying how to configure one."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
import json
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tropic.api import views
from tropic.api.audit import AuditLog
from tropic.api.errors import ApiProblem, error_responses
from tropic.api.metrics import Metrics
from tropic.jobs.healer import JobHealer
from tropic.jobs.views import JobsCollector, job_detail, job_rows
from tropic.txn import Controller

NO_ZOOKEEPER = (
    "no ZooKeeper for replicated jobs' request logs on this server: serve with --ha-zk zk://HOST:PORT/CHROOT "
    "(embedded mode), or run the distributed mode (zk:// store), whose ensemble then holds them"
)
JobName = Annotated[str, Path(min_length=1, max_length=63, description="the job's name")]


class JobCreate(BaseModel):
    """A replicated job to declare."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, description="the job's name (DNS label)")
    program: list[str] | str = Field(description="the program's argv (a list, or a shell-style line)")
    replicas: int = Field(3, ge=1, le=100, description="how many replicas run")
    failure_domain: str = Field("host", description="what no two replicas share: host, rack or region")
    vcpus: int = Field(1, ge=1, description="vCPUs of each replica")
    memory_mib: int = Field(512, ge=1, description="memory of each replica, MiB")
    region: str = Field("", description="only place replicas in this region (empty: any)")
    timeout: float = Field(120.0, gt=0, le=3600, description="seconds to wait for the transaction")


def _healer(request: Request) -> JobHealer | None:
    h = getattr(request.app.state, "job_healer", None)
    return h if isinstance(h, JobHealer) else None


def add_job_routes(
    app: FastAPI, controller: Controller, viewer: Any, operator: Any, audit: AuditLog, metrics: Metrics
) -> None:
    """Register the jobs' routes and gauges; ``viewer``/``operator``: the role gates of ``create_app``."""
    auth = (401, 403)
    metrics.registry.register(
        JobsCollector(lambda: job_rows(controller, getattr(app.state, "job_healer", None)))
    )

    @app.get("/v1/jobs", tags=["jobs"], responses=error_responses(*auth))
    def list_jobs(request: Request, who: viewer) -> dict[str, Any]:
        """Every replicated job: declared replicas, failure domain, size, status, log head, and each
        replica's host, domain, health, applied index and lag."""
        healer = _healer(request)
        return {
            "items": job_rows(controller, healer),
            "healer": healer is not None,
            "zk": getattr(request.app.state, "jobs_zk", None),
        }

    @app.get("/v1/jobs/{name}", tags=["jobs"], responses=error_responses(*auth, 404))
    def get_job(request: Request, who: viewer, name: JobName) -> dict[str, Any]:
        """One job, as in the list, with its recent events (deaths, replacements, crash loops)."""
        row = job_detail(controller, _healer(request), name)
        if row is None:
            raise ApiProblem(404, "unknown_job", f"no job /jobs/{name}")
        return row

    def _run(who: Any, procedure: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        t = controller.submit(procedure, args, submitter=who.name)
        audit.record(who, "submit", "accepted", details={"txn": t.id, "procedure": procedure, "args": args})
        t = controller.wait(t, timeout)
        healer = getattr(app.state, "job_healer", None)
        if isinstance(healer, JobHealer):
            healer.wake()
        return {"txn": views.summary(t), "committed": t.state.value == "COMMITTED"}

    @app.post("/v1/jobs", tags=["jobs"], responses=error_responses(*auth, 400, 409, 422))
    def create_job(request: Request, who: operator, spec: Annotated[JobCreate, Body()]) -> dict[str, Any]:
        """Declare a job and start its replicas in distinct failure domains (one transaction). Answers
        the transaction (``committed`` false with its error when refused, e.g. by
        ``Job.replicas_in_distinct_domains``)."""
        zk = getattr(request.app.state, "jobs_zk", None)
        if not zk:
            raise ApiProblem(409, "no_ha_zookeeper", NO_ZOOKEEPER)
        program = json.dumps(spec.program) if isinstance(spec.program, list) else spec.program
        args = {
            "name": spec.name,
            "program": program,
            "replicas": spec.replicas,
            "failure_domain": spec.failure_domain,
            "vcpus": spec.vcpus,
            "memory_mib": spec.memory_mib,
            "region": spec.region,
            "zk": zk,
        }
        return _run(who, "create_job", args, spec.timeout)

    @app.delete("/v1/jobs/{name}", tags=["jobs"], responses=error_responses(*auth, 404))
    def delete_job(request: Request, who: operator, name: JobName) -> dict[str, Any]:
        """Stop every replica of the job and remove it (one transaction)."""
        if job_detail(controller, None, name) is None:
            raise ApiProblem(404, "unknown_job", f"no job /jobs/{name}")
        return _run(who, "delete_job", {"job": name}, 120.0)
