"""Replicated-job procedures: create and delete a job (``/jobs/<name>``), replace a dead replica, add or
remove one. Each replica is three steps of one transaction: its record (model only), its VM on the chosen
host (capacity, cordon and power rules of a VM) and its process (``run_replica``); a failure of any step
undoes the others.

**Placement in simulation.** The replica's host is chosen while the transaction is simulated, with the
fit rule of :mod:`tropic.model.fit` over the hosts of the job's region scope (read, hence read-locked,
like ``spawn_vm`` without a host), among the hosts whose failure domain no other replica of the job
uses: the best fit of them. Every replica needs the same size and one domain of its own, so choosing
greedily finds distinct domains whenever they exist. When no free domain has a host that fits but some
host does, that host is taken anyway and the constraint :meth:`~tropic.model.jobs.Job.
replicas_in_distinct_domains` refuses the transaction, naming the domain the replicas would share.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated

from tropic.errors import InvalidArguments, NoHostFits
from tropic.model import VM, Host, View
from tropic.model.fit import Candidate, choose, why_none
from tropic.model.index import new_uid
from tropic.model.jobs import JOBS, Job, JobRoot, Replica, Root, domain_of
from tropic.procedures.base import Name, ProcedureFn
from tropic.procedures.placement import candidates, scope_path

# ``<job>-<n>`` names the replica and its VM (a VM name has at most 59 characters): room for 4 digits.
MAX_JOB_NAME_LENGTH = 54


def parse_program(program: str) -> list[str]:
    """A program's argv from a JSON array (``["python3", "-m", "kv"]``) or a shell-style line."""
    text = program.strip()
    if text.startswith("["):
        try:
            argv = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArguments(f"program: not a JSON array of strings: {e}") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise InvalidArguments("program: not a JSON array of strings")
        return argv
    try:
        return shlex.split(text)
    except ValueError as e:
        raise InvalidArguments(f"program: {e}") from None


def job_of(view: View, job: str) -> Job:
    path = job if job.startswith("/") else f"{JOBS}/{job}"
    return view.get(path, Job)


def create_job(
    view: View,
    *,
    name: Annotated[str, Name(MAX_JOB_NAME_LENGTH)],
    program: str,
    replicas: int = 3,
    failure_domain: str = "host",
    vcpus: int = 1,
    memory_mib: int = 512,
    zk: str = "",
    region: str = "",
) -> None:
    """Declare replicated job ``name`` and start its ``replicas`` replicas, each in a failure domain
    (``host``, ``rack`` or ``region``) of its own, chosen in simulation. ``program``: the argv of a
    program speaking JSON lines on stdin/stdout, as a JSON array or a shell-style line. ``zk``: the
    ZooKeeper holding the job's request log (the server fills it in from its configuration)."""
    argv = parse_program(program)
    if not view.exists(JOBS):
        view.get("/", Root).add_job_root()
    view.get(JOBS, JobRoot).add_job(
        name=name,
        program=argv,
        replicas=replicas,
        failure_domain=failure_domain,
        vcpus=vcpus,
        memory_mib=memory_mib,
        zk=zk,
        region=region,
    )
    job = view.get(f"{JOBS}/{name}", Job)
    for _ in range(replicas):
        start_replica(view, job)


def delete_job(view: View, *, job: str) -> None:
    """Stop every replica of ``job`` (a name or a path), delete their VMs and remove the job."""
    j = job_of(view, job)
    for r in j.replica_list():
        stop_replica(view, j, r)
    view.get(JOBS, JobRoot).remove_job(name=j.name)


def replace_job_replica(view: View, *, job: str, replica: str, avoid: str = "") -> None:
    """Replace a dead replica: stop and forget it, then start a new one in a free failure domain (never
    on the hosts listed in ``avoid``, separated by commas, e.g. a host that is down)."""
    j = job_of(view, job)
    r = j.child(replica, Replica)
    stop_replica(view, j, r)
    start_replica(view, j, avoid={a.strip() for a in avoid.split(",") if a.strip()})


def add_job_replica(view: View, *, job: str, avoid: str = "") -> None:
    """Start one more replica of ``job`` (up to its count: after a replacement that could not be
    placed)."""
    j = job_of(view, job)
    start_replica(view, j, avoid={a.strip() for a in avoid.split(",") if a.strip()})


def remove_job_replica(view: View, *, job: str, replica: str) -> None:
    """Stop replica ``replica`` of ``job`` and forget it (the job then runs one replica short)."""
    j = job_of(view, job)
    stop_replica(view, j, j.child(replica, Replica))


# --- the steps of a replica -----------------------------------------------------------------------------
def start_replica(view: View, job: Job, *, avoid: set[str] | None = None) -> Replica:
    """Record, place and start one replica of ``job`` (its record, its VM, its process)."""
    index = job.next_index
    name = f"{job.name}-{index}"
    host = place_replica(view, job, avoid=avoid or set())
    view.check_free(f"{host.path}/{name}", VM)
    uid = new_uid()
    job.add_replica(name=name, host=host.path, index=index, uid=uid)
    host.create_vm(
        name=name,
        vcpus=job.vcpus,
        memory_mib=job.memory_mib,
        image="",
        volume="",
        uid=uid,
        labels={"job": job.name, "replica": name},
    )
    r = job.child(name, Replica)
    r.run_replica(**r.process_args())
    return r


def stop_replica(view: View, job: Job, replica: Replica) -> None:
    """Stop a replica's process, delete its VM and forget it."""
    if replica.state != "stopped":
        replica.halt_replica(**replica.process_args())
    host = view.get(replica.host, Host)
    if view.exists(replica.vm_path):
        host.delete_vm(name=replica.name)
    job.remove_replica(name=replica.name)


def place_replica(view: View, job: Job, *, avoid: set[str]) -> Host:
    """The host for a new replica of ``job``: the best fit among the hosts of its scope in a failure
    domain no other replica uses (see the module docstring); :class:`NoHostFits` when none fits at all."""
    scope = scope_path(job.region)
    level = job.failure_domain
    used = {domain_of(view.get(r.host, Host), level) for r in job.children(Replica)}
    cands = [c for c in candidates(view, scope) if c.path not in avoid]
    free: list[Candidate] = []
    for c in cands:
        if domain_of(view.get(c.path, Host), level) not in used:
            free.append(c)
    best = choose(free, job.vcpus, job.memory_mib) or choose(cands, job.vcpus, job.memory_mib)
    if best is None:
        where = f"in {scope}" + (f" other than {', '.join(sorted(avoid))}" if avoid else "")
        raise NoHostFits(
            f"job {job.name}: {why_none(cands, job.vcpus, job.memory_mib, where)}", path=job.path
        )
    return view.get(best.path, Host)


JOB_PROCEDURES: tuple[ProcedureFn, ...] = (
    create_job,
    delete_job,
    replace_job_replica,
    add_job_replica,
    remove_job_replica,
)
