"""Discovery of the served fleet through the API: the served inventory document, device objects the model
does not know (a domain defined on a managed libvirt host behind tropic's back), adopted by reload or
ignored (a persisted list the reconciler skips)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tropic.api import AuditLog, TokenStore, create_app
from tropic.api.devices import IgnoreList
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.reconcile import Reconciler
from tropic.service.embedded import Embedded, open_embedded

try:
    import libvirt  # noqa: F401

    HAVE_LIBVIRT = True
except ImportError:
    HAVE_LIBVIRT = False

pytestmark = pytest.mark.skipif(not HAVE_LIBVIRT, reason="libvirt-python is not installed")

TOKEN = "operator-token-0123456789abcdef"
HOST = "/compute/r1/host-01"


def small() -> Any:
    return build_datacenter(DatacenterSpec(regions=("r1",), hosts_per_region=2))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Embedded, Reconciler]]:
    e = open_embedded(f"sqlite:///{tmp_path}/s.db", "libvirt+test:///default", initial=small)
    c = e.controller.start()
    rec = Reconciler(c, interval=3600)
    tokens = TokenStore([("otto", TOKEN, "operator")])
    app = create_app(c, tokens, AuditLog(tmp_path / "audit.jsonl", fsync=False), reconciler=rec)
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield client, e, rec
    finally:
        rec.close()
        e.close()


def define_behind_tropics_back(e: Embedded, name: str) -> None:
    conn = e.router.backends["libvirt"].connection(HOST)  # type: ignore[attr-defined]
    xml = (
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )
    conn.defineXML(xml).create()


def test_the_served_document_names_devices_as_the_model_does(
    served: tuple[TestClient, Embedded, Reconciler],
) -> None:
    client, _, _ = served
    r = client.get("/v1/discover")
    assert r.status_code == 200, r.text
    doc = r.json()["inventory"]
    assert [h["name"] for h in doc["hosts"]] == ["host-01", "host-02"]
    assert {h["cpus"] for h in doc["hosts"]} == {16}  # read from the device
    assert doc["storage"][0]["name"] == "san-1"
    assert {i["name"] for i in doc["storage"][0]["images"]} == {"img-ubuntu", "img-debian"}
    assert [r["name"] for r in doc["networks"][0]["routers"]] == ["router-1", "router-2"]
    assert r.json()["unmanaged"] == []


def test_unmanaged_domains_are_listed_adopted_or_ignored(
    served: tuple[TestClient, Embedded, Reconciler], tmp_path: Path
) -> None:
    client, e, rec = served
    define_behind_tropics_back(e, "stray-1")
    define_behind_tropics_back(e, "stray-2")
    items = client.get("/v1/unmanaged").json()["items"]
    assert [(u["kind"], u["path"]) for u in items] == [("vm", f"{HOST}/stray-1"), ("vm", f"{HOST}/stray-2")]
    assert items[0]["detail"]["memory_mib"] == 256

    r = client.post("/v1/unmanaged/ignore", json={"paths": [f"{HOST}/stray-2"]})
    assert r.status_code == 200, r.text
    assert [u["path"] for u in client.get("/v1/unmanaged").json()["items"]] == [f"{HOST}/stray-1"]
    assert IgnoreList.beside(e.store).paths() == [f"{HOST}/stray-2"]  # persisted beside the store
    assert all(d.path != f"{HOST}/stray-2" for d in rec.drift("/"))  # and not drift

    r = client.post("/v1/unmanaged/adopt", json={"paths": [f"{HOST}/stray-1"]})
    assert r.status_code == 200, r.text
    node = e.controller.model.nodes.get(f"{HOST}/stray-1")
    assert node is not None and node.attrs["memory_mib"] == 256
    assert client.get("/v1/unmanaged").json()["items"] == []
    everything = client.get("/v1/unmanaged", params={"all": "true"}).json()["items"]
    assert [u["path"] for u in everything] == [f"{HOST}/stray-2"]


def test_bad_requests_are_refused_clearly(served: tuple[TestClient, Embedded, Reconciler]) -> None:
    client, _, _ = served
    assert client.post("/v1/unmanaged/adopt", json={"paths": []}).status_code == 422
    assert client.post("/v1/unmanaged/ignore", json={"paths": ["/compute/../x"]}).status_code in (404, 422)
    assert client.get("/v1/unmanaged", params={"bogus": "1"}).status_code == 422


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Embedded]]:
    """The same server on a real loopback port (uvicorn in a thread), for the command line."""
    import socket
    import threading
    import time

    import uvicorn

    e = open_embedded(f"sqlite:///{tmp_path}/s.db", "libvirt+test:///default", initial=small)
    c = e.controller.start()
    app = create_app(c, TokenStore([("otto", TOKEN, "operator")]), AuditLog(None, fsync=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", e
    finally:
        app.state.events.close()
        server.should_exit = True
        thread.join(15)
        e.close()


def test_the_command_line_discovers_lists_adopts_and_ignores(live: tuple[str, Embedded]) -> None:
    import tomllib

    from typer.testing import CliRunner

    from tropic.cli.main import app

    url, e = live
    runner = CliRunner()
    base = ["inventory", "discover", "--url", url, "--token", TOKEN]
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    doc = tomllib.loads(r.stdout)
    assert [h["name"] for h in doc["hosts"]] == ["host-01", "host-02"]

    define_behind_tropics_back(e, "stray-1")
    r = runner.invoke(app, [*base, "--unmanaged", "--json"])
    assert r.exit_code == 1, r.output  # there is something unmanaged
    assert '"path": "/compute/r1/host-01/stray-1"' in r.stdout
    r = runner.invoke(app, [*base, "--adopt"])
    assert r.exit_code == 0, r.output
    assert "/compute/r1/host-01/stray-1" in e.controller.model.nodes

    define_behind_tropics_back(e, "stray-2")
    r = runner.invoke(app, [*base, "--ignore"])
    assert r.exit_code == 0 and "ignored: /compute/r1/host-01/stray-2" in r.stdout, r.output
    r = runner.invoke(app, [*base, "--unmanaged"])
    assert r.exit_code == 0 and "no unmanaged device objects" in r.stdout, r.output
    r = runner.invoke(app, [*base, "--adopt", "--ignore"])
    assert r.exit_code == 2, r.output
