"""Replicated jobs (TRIPOD): ``/jobs/<name>`` is a program run as ``replicas`` copies in distinct failure
domains, each replica applying the same ZooKeeper-ordered request log (:mod:`tropic.ha`).

A job holds what to run (``program``: the argv of an unmodified stdin/stdout program), how many replicas,
the failure domain they must not share (``host``, ``rack``: the host's ``failure_domain``, a host without
one being a rack of its own, or ``region``) and each replica's size. Its children ``/jobs/<name>/<replica>``
are the replicas: the host each runs on and its VM there (``<host>/<replica>``: the replica's capacity,
cordon and power rules are the VMs', and with libvirt the replica *is* that domain). Two device actions
on a replica start and stop its process (``run_replica``/``halt_replica``, each the other's undo; the sim
runs it as a local process, :mod:`tropic.drivers.sim_process`); replica records are added and removed by
model-only actions in the same transaction as the VM and the process (``procedures/jobs.py``), so a
failed start rolls all three back. :meth:`Job.replicas_in_distinct_domains` is the placement rule the
transaction layer checks. Importing this module registers the kinds into the standard schema.
"""

from __future__ import annotations

from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Undo, Value, action, constraint, undo
from tropic.model.schema import STANDARD, Host
from tropic.model.services import Root as _ServicesRoot

JOBS = "/jobs"
DOMAINS = ("host", "rack", "region")
RUNNING = "running"
STOPPED = "stopped"


def domain_of(host: Host, level: str) -> str:
    """The failure domain ``host`` is in at ``level``: itself, its rack (its ``failure_domain``; a host
    without one is a rack of its own) or its region."""
    if level == "region":
        return host.parent_path
    if level == "rack":
        return host.failure_domain or host.path
    return host.path


class Root(_ServicesRoot):
    """The root, with the action that creates ``/jobs`` (kind ``root`` as before)."""

    kind = "root"

    @action(undo="remove_job_root", device=False)
    def add_job_root(self) -> Undo:
        """Create ``/jobs`` (model only)."""
        self._view.create(JOBS, JobRoot, {})
        return undo()

    @action(undo="add_job_root", device=False)
    def remove_job_root(self) -> Undo:
        if self._view.child_paths(JOBS):
            raise ModelError(f"cannot remove {JOBS}: it still holds jobs", path=JOBS)
        self._view.delete(JOBS)
        return undo()


class JobRoot(Resource):
    """``/jobs``: replicated jobs are added and removed below it."""

    kind = "job_root"

    @action(undo="remove_job", device=False)
    def add_job(
        self,
        *,
        name: str,
        program: Value,
        replicas: int,
        failure_domain: str,
        vcpus: int,
        memory_mib: int,
        zk: str,
        region: str = "",
        next_index: int = 1,
        labels: Value = None,
    ) -> Undo:
        where = f"{self.path}/{name}"
        argv = list(program) if isinstance(program, list) else []
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ModelError(f"{where}: program must be a non-empty list of arguments", path=where)
        if failure_domain not in DOMAINS:
            raise ModelError(
                f"{where}: failure domain must be one of {', '.join(DOMAINS)}, not {failure_domain!r}",
                path=where,
            )
        if replicas < 1:
            raise ModelError(f"{where}: replicas must be at least 1, not {replicas}", path=where)
        if vcpus < 1 or memory_mib < 1:
            raise ModelError(f"{where}: vcpus and memory_mib must be positive", path=where)
        if not zk:
            raise ModelError(f"{where}: no ZooKeeper for the job's request log", path=where)
        if name in {p.rsplit("/", 1)[1] for p in self._view.child_paths(self.path)}:
            raise ResourceExists(f"job {where} already exists", path=where)
        self.add_child(
            Job,
            name,
            program=argv,
            replicas=replicas,
            failure_domain=failure_domain,
            vcpus=vcpus,
            memory_mib=memory_mib,
            zk=zk,
            region=region,
            next_index=next_index,
            labels=dict(labels or {}),
        )
        return undo(name=name)

    @action(undo="add_job", device=False)
    def remove_job(self, *, name: str) -> Undo:
        job = self.child(name, Job)
        left = list(job.children(Replica))
        if left:
            raise ModelError(f"cannot remove {job.path}: it still has {len(left)} replica(s)", path=job.path)
        spec = job.snapshot()
        self.remove_child(name)
        return undo(name=name, **spec)


class Job(Resource):
    """A replicated job: ``replicas`` copies of ``program``, in distinct ``failure_domain``s."""

    kind = "job"
    program = Attr(list, doc="the argv of the program each replica runs (stdin/stdout JSON lines)")
    replicas = Attr(int, doc="how many replicas run")
    failure_domain = Attr(str, doc="what no two replicas may share: host, rack or region")
    vcpus = Attr(int, doc="vCPUs of each replica")
    memory_mib = Attr(int, doc="memory of each replica, MiB")
    zk = Attr(str, doc="the ZooKeeper holding the job's request log (zk://servers/chroot)")
    region = Attr(str, "", doc="region scope of the placement; empty: every region")
    next_index = Attr(int, 1, doc="the number the next replica's name gets (<job>-<n>)")
    labels = Attr(dict, {}, doc="operator labels, key -> value")

    def replica_list(self) -> list[Replica]:
        return sorted(self.children(Replica), key=lambda r: (r.index, r.name))

    @constraint
    def replicas_in_distinct_domains(self) -> Iterator[tuple[str, Resource]]:
        """No two replicas of the job share a failure domain (host, rack or region)."""
        seen: dict[str, str] = {}
        for r in self.replica_list():
            host = self._view.get(r.host, Host)
            dom = domain_of(host, self.failure_domain)
            other = seen.get(dom)
            if other is not None:
                yield (
                    f"job {self.name}: replicas {other} and {r.name} share the {self.failure_domain} "
                    f"{dom} (its replicas must be in distinct {self.failure_domain}s)",
                    self,
                )
            seen[dom] = r.name

    @constraint
    def replicas_within_count(self) -> Iterator[tuple[str, Resource]]:
        """No more replica records than ``replicas``."""
        n = len(list(self.children(Replica)))
        if n > self.replicas:
            yield (f"job {self.name} has {n} replicas, more than its {self.replicas}", self)

    @action(undo="remove_replica", device=False)
    def add_replica(self, *, name: str, host: str, index: int, uid: str = "") -> Undo:
        """Record replica ``name`` on ``host`` (model only; its VM and process come next)."""
        self._view.get(host, Host)
        if index >= self.next_index:
            self.next_index = index + 1
        self.add_child(Replica, name, host=host, index=index, uid=uid, state=STOPPED)
        return undo(name=name)

    @action(undo="add_replica", device=False)
    def remove_replica(self, *, name: str) -> Undo:
        """Forget replica ``name`` (model only; its process must be halted)."""
        r = self.child(name, Replica)
        if r.state != STOPPED:
            raise ModelError(f"cannot forget {r.path}: its process still runs", path=r.path)
        spec = r.snapshot()
        self.remove_child(name)
        return undo(name=name, host=str(spec["host"]), index=int(spec["index"]), uid=str(spec["uid"]))


class Replica(Resource):
    """One replica of a job: the host it runs on (its VM is ``<host>/<name>``) and its process's state."""

    kind = "job_replica"
    host = Attr(str, doc="path of the host the replica runs on")
    index = Attr(int, doc="the replica's number within its job")
    uid = Attr(str, "", doc="uid of the replica's VM")
    state = Attr(str, STOPPED, doc="running (its process was started) or stopped")

    @property
    def vm_path(self) -> str:
        return f"{self.host}/{self.name}"

    def process_args(self) -> dict[str, Value]:
        job = self._view.get(self.parent_path, Job)
        return {
            "job": job.name,
            "replica": self.name,
            "host": self.host,
            "program": list(job.program),
            "zk": job.zk,
        }

    @action(undo="halt_replica")
    def run_replica(self, *, job: str, replica: str, host: str, program: Value, zk: str) -> Undo:
        """Start the replica's process on its host (the replica wrapper around ``program``)."""
        if self.state == RUNNING:
            raise ModelError(f"{self.path} already runs", path=self.path)
        self.state = RUNNING
        return undo(job=job, replica=replica, host=host, program=program, zk=zk)

    @action(undo="run_replica")
    def halt_replica(self, *, job: str, replica: str, host: str, program: Value, zk: str) -> Undo:
        """Stop the replica's process (idempotent: a process already gone is fine)."""
        if self.state != RUNNING:
            raise ModelError(f"{self.path} does not run", path=self.path)
        self.state = STOPPED
        return undo(job=job, replica=replica, host=host, program=program, zk=zk)


for _cls in (Root, JobRoot, Job, Replica):
    STANDARD.register(_cls)
