"""``tropic host cordon|uncordon|drain|evacuate`` against a real server: drain cordons the host, moves
every VM away with one checked ``migrate_vm`` transaction each, names every VM that cannot move and why,
and exits 1 then; evacuate may cross regions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from api.api_harness import IMAGE, OPERATOR, Server, start_server
from tropic.cli.main import app
from tropic.model import Host, audit
from tropic.optimize.actuator import StepOutcome
from tropic.optimize.drain import drain, plan_drain
from tropic.optimize.model_adapter import ControllerRunner
from tropic.optimize.plan import PlannedStep
from tropic.txn import Controller, State

runner = CliRunner()
H1 = "/compute/us-east/host-01"


@pytest.fixture
def server() -> Iterator[Server]:
    s = start_server(latency=0.0)
    yield s
    s.stop()


def host_cmd(server: Server, *args: str) -> tuple[int, Any, str]:
    result = runner.invoke(app, ["host", *args, "--url", server.url, "--token", OPERATOR, "--json"])
    out = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, out, " ".join(result.stderr.split())


def spawn(c: Controller, name: str, host: str, memory_mib: int) -> None:
    args = {"host": host, "name": name, "image": IMAGE, "vcpus": 1, "memory_mib": memory_mib}
    t = c.wait(c.submit("spawn_vm", args), 30)
    assert t.state is State.COMMITTED, t.error


def vms_on(c: Controller, host: str) -> list[str]:
    return c.call(lambda: sorted(v.name for v in c.model.reader().get(host, Host).vms()))


def settled(c: Controller) -> None:
    assert c.drain(60)
    report = c.check()
    assert report["consistent"] and report["violations"] == [] and audit(c.model) == []


def test_drain_cordons_and_moves_every_vm_within_the_region(server: Server) -> None:
    c = server.controller
    for name, mem in (("a", 8192), ("b", 4096), ("c", 2048)):
        spawn(c, name, H1, mem)
    code, out, err = host_cmd(server, "drain", H1)
    assert code == 0, err
    assert out["ok"] and out["cordoned_now"] and out["stuck"] == {}
    assert sorted(out["moved"]) == [f"{H1}/{n}" for n in ("a", "b", "c")]
    assert all(d.startswith("/compute/us-east/") and d != H1 for d in out["moved"].values())
    assert [t["procedure"] for t in out["transactions"]] == ["cordon_host"] + ["migrate_vm"] * 3
    assert vms_on(c, H1) == []
    assert c.call(lambda: c.model.reader().get(H1, Host).cordoned)
    # A second drain finds the host already cordoned and empty: nothing to do, still success.
    code, out, _ = host_cmd(server, "drain", H1)
    assert code == 0 and not out["cordoned_now"] and out["moved"] == {}
    settled(c)


def test_a_vm_that_cannot_move_is_named_with_why_and_evacuate_crosses_regions(server: Server) -> None:
    c = server.controller
    for i in (2, 3, 4):
        spawn(c, f"full{i}", f"/compute/us-east/host-0{i}", 30000)
    spawn(c, "big", H1, 8192)
    code, out, _ = host_cmd(server, "drain", H1)
    assert code == 1 and not out["ok"] and out["moved"] == {}
    assert out["stuck"] == {
        f"{H1}/big": f"no host in /compute/us-east other than {H1} fits 1 vCPUs/8192 MiB: "
        "3 without memory (largest free 2768 MiB)"
    }
    code, out, err = host_cmd(server, "evacuate", H1)
    assert code == 0, err
    (dest,) = out["moved"].values()
    assert not dest.startswith("/compute/us-east/")
    settled(c)


def test_cordon_and_uncordon_commands(server: Server) -> None:
    code, out, _ = host_cmd(server, "cordon", H1)
    assert code == 0 and out["state"] == "COMMITTED"
    code, out, _ = host_cmd(server, "cordon", H1)
    assert code == 1 and "already cordoned" in out["error"]
    code, out, _ = host_cmd(server, "uncordon", H1)
    assert code == 0 and out["state"] == "COMMITTED"
    result = runner.invoke(
        app, ["host", "cordon", "/compute/us-east/nope", "--url", server.url, "--token", OPERATOR]
    )
    assert result.exit_code == 1 and "no resource at /compute/us-east/nope" in " ".join(result.stderr.split())


class RefuseFirstMigration:
    """A runner whose first planned migration is refused, as when the model changed since the plan."""

    def __init__(self, inner: ControllerRunner) -> None:
        self.inner = inner
        self.refused = False

    def run(self, step: PlannedStep) -> StepOutcome:
        if step.procedure == "migrate_vm" and "dest" in step.args and not self.refused:
            self.refused = True
            return StepOutcome(step, committed=False, state="ABORTED", error="refused for the test")
        return self.inner.run(step)


def test_a_refused_planned_move_is_retried_with_the_destination_chosen_in_simulation(server: Server) -> None:
    c = server.controller
    spawn(c, "a", H1, 4096)
    spawn(c, "b", H1, 2048)
    plan = c.call(lambda: plan_drain(c.model, H1))
    assert [s.args["vm"] for s in plan.moves] == [f"{H1}/a", f"{H1}/b"]  # largest first
    lines: list[str] = []
    report = drain(H1, lambda: c.model, RefuseFirstMigration(ControllerRunner(c)), progress=lines.append)
    assert report.ok and set(report.moved) == {f"{H1}/a", f"{H1}/b"}
    assert any("chosen by the server" in line for line in lines)
    assert [o.committed for o in report.outcomes] == [True, False, True, True]
    assert vms_on(c, H1) == []
    settled(c)


def test_draining_something_that_is_not_a_host_is_bad_input(server: Server) -> None:
    for path, message in (
        ("/compute/us-east/nope", "no resource at /compute/us-east/nope"),
        ("/compute/us-east", "/compute/us-east is a region, not a host"),
    ):
        code, out, err = host_cmd(server, "drain", path)
        assert code == 2 and out is None and message in err and "Traceback" not in err
