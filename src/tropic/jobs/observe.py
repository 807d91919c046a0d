"""What the controller sees of its replicated jobs: the model's replicas, the sim host's processes, and
each job's ZooKeeper nodes (the contract of :mod:`tropic.ha.contract`: the ephemeral
``<ha_root(job)>/replicas/<replica>`` of every live replica with its applied index and state, and the log
``<ha_root(job)>/log`` whose newest entry is the log head).

:class:`JobZooKeeper` reads them (one kazoo session of the controller's, on the jobs' ensemble) and
watches each job's replica nodes, calling back on any change (a replica's session ended: its node is
gone); :func:`read_jobs` copies the jobs out of the model on the controller's thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tropic.ha.contract import LOG_PREFIX, ReplicaInfo, ha_root
from tropic.model import Host, Job, Model, Replica
from tropic.model.jobs import JOBS, domain_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """A replica as the model has it."""

    name: str
    path: str
    host: str
    domain: str
    state: str
    index: int


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as the model has it (copied out of the model)."""

    name: str
    path: str
    program: list[str]
    replicas: int
    failure_domain: str
    vcpus: int
    memory_mib: int
    zk: str
    region: str
    members: tuple[ReplicaSpec, ...] = field(default_factory=tuple)


def read_jobs(model: Model) -> list[JobSpec]:
    """Every job of ``model`` (call on the controller's thread: ``controller.call``)."""
    v = model.reader()
    if not v.exists(JOBS):
        return []
    out: list[JobSpec] = []
    for p in sorted(v.child_paths(JOBS)):
        job = v.get(p, Job)
        members = []
        for r in job.replica_list():
            host = v.get(r.host, Host) if v.exists(r.host) else None
            dom = domain_of(host, job.failure_domain) if host is not None else ""
            members.append(ReplicaSpec(r.name, r.path, r.host, dom, r.state, r.index))
        out.append(
            JobSpec(
                job.name,
                job.path,
                list(job.program),
                job.replicas,
                job.failure_domain,
                job.vcpus,
                job.memory_mib,
                job.zk,
                job.region,
                tuple(members),
            )
        )
    return out


def replica_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _info(raw: bytes, name: str) -> ReplicaInfo | None:
    try:
        d = json.loads(raw.decode())
        return ReplicaInfo(
            replica=str(d.get("replica", name)),
            address=str(d.get("address", "")),
            applied=int(d.get("applied", -1)),
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0)),
            state="serving" if d.get("state") == "serving" else "catching-up",
        )
    except (ValueError, TypeError, AttributeError):
        return None


class JobZooKeeper:
    """One kazoo session on the jobs' ensemble (its ``zk://`` URI with the chroot the replicas use)."""

    def __init__(self, uri: str, *, connect_timeout: float = 20.0) -> None:
        from tropic.store.zkclient import open_client

        self.uri = uri
        self.client: Any = open_client(uri, connect_timeout=connect_timeout)
        self._watched: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    def replicas(self, job: str) -> dict[str, ReplicaInfo]:
        """The live replicas of ``job`` (their ephemeral nodes), by name."""
        from kazoo.exceptions import NoNodeError

        root = f"{ha_root(job)}/replicas"
        try:
            names = self.client.get_children(root)
        except NoNodeError:
            return {}
        out: dict[str, ReplicaInfo] = {}
        for name in names:
            try:
                raw, _ = self.client.get(f"{root}/{name}")
            except NoNodeError:
                continue
            info = _info(raw, name)
            if info is not None:
                out[name] = info
        return out

    def log_head(self, job: str) -> int:
        """The highest log index of ``job`` (-1: an empty log)."""
        from kazoo.exceptions import NoNodeError

        try:
            names = self.client.get_children(f"{ha_root(job)}/log")
        except NoNodeError:
            return -1
        seqs = [int(n[len(LOG_PREFIX) :]) for n in names if n.startswith(LOG_PREFIX)]
        return max(seqs, default=-1)

    def watch(self, job: str, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever ``job``'s set of live replicas changes (from kazoo's thread)."""
        with self._lock:
            if job in self._watched:
                return
            self._watched.add(job)
        root = f"{ha_root(job)}/replicas"
        self.client.ensure_path(root)

        def changed(children: list[str]) -> bool:
            on_change()
            with self._lock:
                return job in self._watched  # False ends the watch (the job was deleted)

        self.client.ChildrenWatch(root, changed)

    def unwatch(self, job: str) -> None:
        with self._lock:
            self._watched.discard(job)

    def forget(self, job: str) -> None:
        """Remove a deleted job's nodes (its log, replicas and snapshots)."""
        self.unwatch(job)
        self.client.delete(ha_root(job), recursive=True)


__all__ = ["JobSpec", "JobZooKeeper", "Replica", "ReplicaSpec", "read_jobs", "replica_of"]
