"""Jobs in the inventory file: ``[[jobs]]`` is typed and checked with file:line errors like the rest (an
unknown field, a bad failure domain, a duplicate name, an unknown region, too few failure domains for the
replicas, naming the constraint); the plan creates the file's jobs after the fleet, removes the model's
jobs the file does not list, never proposes to destroy a replica's VM, and says a changed job is not
changed in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.helpers import small_dc
from ha_jobs.kit import job_args, run, with_sleepers
from tropic.drivers import SimDriver
from tropic.inventory import InventoryError, load, loads
from tropic.inventory.diff import diff, tree_of_model
from tropic.model import project
from tropic.txn import Controller, State

FLEET = """\
[[regions]]
name = "r1"

[[hosts]]
name = "host-01"
region = "r1"
cpus = 8
memory_mib = 8192
failure_domain = "rack-1"

[[hosts]]
name = "host-02"
region = "r1"
cpus = 8
memory_mib = 8192
failure_domain = "rack-1"

[[hosts]]
name = "host-03"
region = "r1"
cpus = 8
memory_mib = 8192
failure_domain = "rack-2"
"""

JOB = """
[[jobs]]
name = "kv"
program = ["python3", "kv.py"]
replicas = 3
failure_domain = "host"
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(InventoryError) as e:
        load(path)
    return [str(p) for p in e.value.problems]


def test_a_job_loads(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text(FLEET + JOB)
    inv = load(tmp_path / "fleet.toml")
    (job,) = inv.fleet.jobs
    assert (job.name, job.program, job.replicas, job.failure_domain) == (
        "kv",
        ["python3", "kv.py"],
        3,
        "host",
    )


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (JOB.replace('failure_domain = "host"', 'failure_domain = "zone"'), 29, "jobs[0].failure_domain"),
        (JOB.replace("replicas = 3", 'replicas = 3\ncolour = "red"'), 29, "jobs[0].colour"),
        (JOB.replace("replicas = 3", 'replicas = 3\nregion = "mars"'), 29, "unknown region 'mars'"),
        (JOB.replace('program = ["python3", "kv.py"]', "program = []"), 27, "jobs[0].program"),
        (JOB.replace('name = "kv"', 'name = "Bad_Name"'), 26, "jobs[0].name"),
        (
            JOB.replace('failure_domain = "host"', 'failure_domain = "rack"'),
            28,
            "Job.replicas_in_distinct_domains",
        ),
        (JOB + JOB, 32, "duplicate job 'kv'"),
    ],
)
def test_bad_jobs_are_refused_with_the_file_and_line(
    tmp_path: Path, change: str, line: int, message: str
) -> None:
    found = problems(tmp_path, FLEET + change)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'fleet.toml'}:"), found
    assert message in found[0], found
    assert int(found[0].split(":")[1]) == line, found  # the line of the job's field


def test_the_plan_creates_removes_and_leaves_replicas_alone(tmp_path: Path) -> None:
    model = small_dc()
    sim = with_sleepers(SimDriver(seed=1))
    sim.load(project(model))
    c = Controller(model, sim).start()
    try:
        assert run(c, "create_job", job_args(name="old", replicas=2)).state is State.COMMITTED
        inv = loads(FLEET + JOB, "toml")
        tree = c.call(lambda: tree_of_model(c.model))
        changes = {(ch.op, ch.path): ch for ch in diff(inv, tree, vms=True) if ch.kind in ("job", "vm")}
        add = changes[("+", "/jobs/kv")]
        assert add.applicable and add.calls[0].procedure == "create_job"
        assert add.calls[0].args["program"] == '["python3", "kv.py"]'
        rm = changes[("-", "/jobs/old")]
        assert rm.applicable and rm.calls[0].procedure == "delete_job"
        assert not [ch for (op, _), ch in changes.items() if ch.kind == "vm" and op == "-"]  # replicas' VMs
        # a job declared differently is listed, not changed in place
        assert run(c, "create_job", job_args(name="kv", replicas=2)).state is State.COMMITTED
        tree = c.call(lambda: tree_of_model(c.model))
        (change,) = [ch for ch in diff(inv, tree) if ch.path == "/jobs/kv"]
        assert change.op == "~" and not change.applicable and "not changed in place" in change.note
    finally:
        c.stop()
        sim.processes.kill_all()
