"""``tropic host evacuate`` of a dead host against a real server: the server says the host's device does
not answer (``GET /v1/host-liveness``), so evacuate declares it failed and rebuilds every VM elsewhere
(``rebuild_vm``), saying so in its output and ``--json``; ``--rebuild`` on a live host is refused by the
device check; exit codes 0, 1 and 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from api.api_harness import IMAGE, OPERATOR, VIEWER, Server, start_server
from tropic.api.client import Client
from tropic.cli.main import app
from tropic.model import VM, Host, audit, project
from tropic.model.inventory import without
from tropic.txn import Controller, State

runner = CliRunner()
H1 = "/compute/us-east/host-01"


@pytest.fixture
def server() -> Iterator[Server]:
    s = start_server(latency=0.0)
    yield s
    s.stop()


def evacuate(server: Server, *args: str, json_out: bool = True) -> tuple[int, Any, str, str]:
    cmd = ["host", "evacuate", *args, "--url", server.url, "--token", OPERATOR]
    result = runner.invoke(app, [*cmd, "--json"] if json_out else cmd)
    out = json.loads(result.stdout) if json_out and result.stdout.strip() else result.stdout
    return result.exit_code, out, " ".join(result.stdout.split()), " ".join(result.stderr.split())


def spawn(c: Controller, name: str, host: str, memory_mib: int) -> dict[str, Any]:
    args = {"host": host, "name": name, "image": IMAGE, "vcpus": 1, "memory_mib": memory_mib}
    t = c.wait(c.submit("spawn_vm", args), 30)
    assert t.state is State.COMMITTED, t.error
    return dict(c.call(lambda: c.model.reader().get(f"{host}/{name}", VM).snapshot()))


def host_of(c: Controller, name: str) -> str:
    """The host VM ``name`` is on now, in any region."""

    def find() -> list[str]:
        return [p for p, n in c.model.walk("/compute") if n.kind == VM.kind and p.endswith(f"/{name}")]

    (path,) = c.call(find)
    return path.rsplit("/", 1)[0]


def test_evacuate_of_a_dead_host_rebuilds_every_vm_and_says_so(server: Server) -> None:
    c, sim = server.controller, server.driver
    specs = {n: spawn(c, n, H1, m) for n, m in (("a", 8192), ("b", 4096), ("c", 2048))}
    with Client(server.url, OPERATOR) as api:
        assert api.host_liveness(H1)["alive"] is True
    sim.fail_host(H1)  # type: ignore[attr-defined]
    with Client(server.url, VIEWER) as api:
        info = api.host_liveness(H1)
    assert info == {"host": H1, "alive": False, "failed": False, "cordoned": False, "powered": True}

    code, out, _, err = evacuate(server, H1)
    assert code == 0, err
    assert out["ok"] and out["dead"] and out["mode"] == "rebuild" and out["alive"] is False
    assert out["rebuild_reason"] == "its device does not answer" and out["declared_failed_now"]
    assert sorted(out["moved"]) == [f"{H1}/{n}" for n in ("a", "b", "c")]
    assert [t["procedure"] for t in out["transactions"]] == ["declare_host_failed"] + ["rebuild_vm"] * 3
    for name, spec in specs.items():
        where = host_of(c, name)
        assert where != H1 and where == out["moved"][f"{H1}/{name}"]
        assert c.call(lambda w=where, n=name: c.model.reader().get(f"{w}/{n}", VM).snapshot()) == spec
    h = c.call(lambda: c.model.reader().get(H1, Host).snapshot())
    assert h["failed"] and h["cordoned"] and h["configs"] == [] and h["volumes"] == []
    assert c.drain(60) and audit(c.model) == []
    assert without(project(c.model), {H1}) == without(sim.inventory(), {H1})
    # Again: the host is declared failed and holds nothing; nothing to do, still success.
    code, out, _, err = evacuate(server, H1)
    assert code == 0 and out["mode"] == "rebuild" and out["rebuild_reason"] == "it is declared failed"
    assert out["moved"] == {} and not out["declared_failed_now"]


def test_the_text_output_says_the_host_is_dead_and_rebuilt(server: Server) -> None:
    c, sim = server.controller, server.driver
    spawn(c, "a", H1, 2048)
    sim.fail_host(H1)  # type: ignore[attr-defined]
    code, _, out, err = evacuate(server, H1, json_out=False)
    assert code == 0, err
    assert f"{H1} is dead (its device does not answer)" in err and "rebuilt elsewhere" in err
    assert "rebuilt on" in out and "1 rebuilt" in out and "declared failed and cordoned" in out


def test_rebuild_flag_on_a_live_host_is_refused_by_the_device_check(server: Server) -> None:
    c = server.controller
    spawn(c, "a", H1, 2048)
    code, out, _, _ = evacuate(server, H1, "--rebuild")
    assert code == 1 and not out["ok"] and out["mode"] == "rebuild" and out["alive"] is True
    assert out["moved"] == {} and "answers" in out["stuck"][H1]
    assert host_of(c, "a") == H1
    h = c.call(lambda: c.model.reader().get(H1, Host).snapshot())
    assert not h["failed"] and not h["cordoned"]  # the refused declaration was undone
    # Without the flag the live host is evacuated by live migration as before.
    code, out, _, err = evacuate(server, H1)
    assert code == 0 and out["mode"] == "migrate" and not out["dead"], err


def test_a_vm_no_host_can_take_is_named_and_the_exit_status_is_1(server: Server) -> None:
    c, sim = server.controller, server.driver
    spawn(c, "huge", H1, 30000)
    for region in ("us-east", "eu-west", "ap-south"):
        for i in (1, 2, 3, 4):
            host = f"/compute/{region}/host-0{i}"
            if host != H1 and host in c.model.nodes:
                spawn(c, f"fill-{region}-{i}", host, 30000)
    sim.fail_host(H1)  # type: ignore[attr-defined]
    code, out, _, _ = evacuate(server, H1)
    assert code == 1 and out["mode"] == "rebuild" and out["moved"] == {}
    assert "no host in /compute other than" in out["stuck"][f"{H1}/huge"]
    assert host_of(c, "huge") == H1  # still recorded on the dead host


def test_evacuating_something_that_is_not_a_host_is_bad_input(server: Server) -> None:
    for path, message in (
        ("/compute/us-east/nope", "no resource at /compute/us-east/nope"),
        ("/compute/us-east", "/compute/us-east is a region, not a host"),
    ):
        code, _, _, err = evacuate(server, path)
        assert code == 2 and message in err and "Traceback" not in err, (code, err)
