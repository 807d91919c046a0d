"""How replicated jobs are shown (``tropic get jobs``, ``tropic describe /jobs/<name>``, ``GET /v1/jobs``,
the dashboard's jobs panel and the ``/metrics`` gauges): one row per job, from the model (what is
declared and where each replica runs) and the healer's last pass (each replica's health, applied index
and lag behind the log head, the job's status and recent events).

Without a healer (a server that does not run one), health comes from the driver's processes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tropic.jobs.healer import JobHealer
from tropic.jobs.observe import JobSpec, read_jobs
from tropic.txn import Controller

UP = ("serving", "catching-up", "starting", "running")


def _row(job: JobSpec, health: dict[str, Any] | None, procs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    seen = {r["name"]: r for r in (health or {}).get("replicas", [])}
    members: list[dict[str, Any]] = []
    for r in job.members:
        h = seen.get(r.name)
        proc = procs.get(r.path, {})
        if h is None:  # not judged yet (or no healer): what the driver says of its process
            alive = proc.get("alive")
            h = {
                "health": "running" if alive else ("dead" if alive is False else "unknown"),
                "pid": proc.get("pid", 0),
                "address": "",
                "applied": -1,
                "lag": None,
                "exit_code": proc.get("exit_code"),
                "reason": "",
            }
        members.append(
            {
                "name": r.name,
                "path": r.path,
                "host": r.host,
                "domain": r.domain,
                "state": r.state,
                "health": h["health"],
                "pid": h.get("pid", 0),
                "address": h.get("address", ""),
                "applied": h.get("applied", -1),
                "lag": h.get("lag"),
                "exit_code": h.get("exit_code"),
                "reason": h.get("reason", ""),
            }
        )
    up = [m for m in members if m["health"] in UP]
    lags = [m["lag"] for m in members if m["lag"] is not None]
    return {
        "name": job.name,
        "path": job.path,
        "program": job.program,
        "replicas": job.replicas,
        "up": len(up),
        "serving": sum(1 for m in members if m["health"] == "serving"),
        "failure_domain": job.failure_domain,
        "vcpus": job.vcpus,
        "memory_mib": job.memory_mib,
        "region": job.region,
        "zk": job.zk,
        "status": (health or {}).get("status", "unknown"),
        "message": (health or {}).get("message", ""),
        "log_head": (health or {}).get("log_head", -1),
        "max_lag": max(lags) if lags else None,
        "replacements": (health or {}).get("replacements", 0),
        "next_start_in_s": (health or {}).get("next_start_in_s", 0.0),
        "members": members,
    }


def job_rows(controller: Controller, healer: JobHealer | None) -> list[dict[str, Any]]:
    """Every job, as :func:`_row` shows it."""
    jobs = controller.call(lambda: read_jobs(controller.model))
    health = healer.snapshot()["health"] if healer is not None else {}
    procs = controller.driver.replica_processes() if jobs else {}
    return [_row(j, health.get(j.name), procs) for j in jobs]


def job_detail(controller: Controller, healer: JobHealer | None, name: str) -> dict[str, Any] | None:
    """One job's row with its recent events; None when there is no such job."""
    for row in job_rows(controller, healer):
        if row["name"] == name:
            row["events"] = healer.snapshot(name)["events"] if healer is not None else []
            return row
    return None


class JobsCollector(Collector):
    """The jobs' gauges for ``/metrics``: replicas wanted, up and serving per job, each replica's lag,
    the log head, replacements so far, and whether the job is crash-looping."""

    def __init__(self, rows: Callable[[], list[dict[str, Any]]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self.rows()
        per_job = {
            "replicas": ("tropic_job_replicas", "Replicas a job declares"),
            "up": ("tropic_job_replicas_up", "Replicas of a job alive (serving, catching up or starting)"),
            "serving": ("tropic_job_replicas_serving", "Replicas of a job serving requests"),
            "log_head": ("tropic_job_log_head", "Highest index in a job's request log (-1: empty)"),
            "replacements": ("tropic_job_replacements", "Replicas replaced since the healer started"),
        }
        for key, (name, doc) in per_job.items():
            g = GaugeMetricFamily(name, doc, labels=["job"])
            for r in rows:
                g.add_metric([r["name"]], float(r[key]))
            yield g
        loop = GaugeMetricFamily(
            "tropic_job_crash_looping", "1 when a job's replicas exit at once", labels=["job"]
        )
        for r in rows:
            loop.add_metric([r["name"]], 1.0 if r["status"] == "crash-looping" else 0.0)
        yield loop
        lag = GaugeMetricFamily(
            "tropic_job_replica_lag", "Log entries a replica has not applied yet", labels=["job", "replica"]
        )
        for r in rows:
            for m in r["members"]:
                if m["lag"] is not None:
                    lag.add_metric([r["name"], m["name"]], float(m["lag"]))
        yield lag
