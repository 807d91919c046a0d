"""Operator views against a real server: ``GET /v1/vms|hosts|regions`` with capacity, selectors and pages,
``GET /v1/describe`` with the transactions that acted on a resource (a migrated VM's included), the CLI's
``get``/``describe`` in every output format, ``tree`` showing VMs, and the capacity metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from api_harness import HOST, OPERATOR, VIEWER, Server, spawn_args
from typer.testing import CliRunner

from tropic.cli.main import app

runner = CliRunner()
HOST2 = "/compute/us-east/host-02"


def cli(server: Server, *args: str, token: str = VIEWER) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--token", token])
    return result.exit_code, result.stdout, result.stderr


def run(server: Server, procedure: str, args: dict[str, Any]) -> dict[str, Any]:
    r = server.client(OPERATOR).post("/v1/transactions", json={"procedure": procedure, "args": args})
    assert r.status_code == 202, r.text
    return server.wait_final(r.json()["id"])


def set_labels(server: Server, path: str, labels: dict[str, str]) -> None:
    """Labels are set on the model directly (no procedure sets them yet)."""

    def write() -> None:
        server.model.nodes[path].attrs["labels"] = labels

    server.controller.call(write)


@pytest.fixture(scope="module")
def vms(server: Server) -> dict[str, dict[str, Any]]:
    made = {}
    for name, host, mem in (("view-a", HOST, 1024), ("view-b", HOST, 2048), ("view-c", HOST2, 512)):
        d = run(server, "spawn_vm", spawn_args(name, host=host, memory_mib=mem))
        assert d["state"] == "COMMITTED", d
        made[name] = d
    set_labels(server, f"{HOST}/view-a", {"app": "web", "tier": "front"})
    set_labels(server, f"{HOST}/view-b", {"app": "web", "tier": "back"})
    set_labels(server, HOST2, {"rack": "r7"})
    return made


def test_vms_rows_selectors_and_pages(server: Server, vms: dict[str, Any]) -> None:
    c = server.client(VIEWER)
    r = c.get("/v1/vms", params={"region": "us-east"})
    assert r.status_code == 200, r.text
    rows = {v["name"]: v for v in r.json()["items"]}
    a = rows["view-a"]
    assert a["path"] == f"{HOST}/view-a" and a["region"] == "us-east" and a["host"] == "host-01"
    assert a["state"] == "running" and a["memory_mib"] == 1024 and len(a["uid"]) == 36
    web = c.get("/v1/vms", params={"selector": "app=web"}).json()["items"]
    assert sorted(v["name"] for v in web) == ["view-a", "view-b"]
    front = c.get("/v1/vms", params={"selector": "app=web,tier!=back"}).json()["items"]
    assert [v["name"] for v in front] == ["view-a"]
    # pages: every VM once, in path order
    seen: list[str] = []
    after = None
    while True:
        page = c.get("/v1/vms", params={"limit": 1, **({"after": after} if after else {})}).json()
        seen += [v["path"] for v in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(seen, key=lambda p: p.split("/")) and len(seen) == len(set(seen)) >= 3
    bad = c.get("/v1/vms", params={"selector": "a=b,!x"})
    assert bad.status_code == 422 and "selector" in bad.json()["error"]["message"]
    assert c.get("/v1/vms", params={"region": "mars"}).status_code == 404


def test_hosts_and_regions_show_used_and_free_capacity(server: Server, vms: dict[str, Any]) -> None:
    c = server.client(VIEWER)
    hosts = {h["path"]: h for h in c.get("/v1/hosts").json()["items"]}
    h1 = hosts[HOST]
    node = server.model.nodes[HOST].attrs
    vm_mem = [server.model.nodes[p].attrs["memory_mib"] for p in server.model.children(HOST)]
    assert h1["memory_used_mib"] == sum(vm_mem) and h1["vms"] == len(vm_mem)
    assert h1["memory_free_mib"] == node["memory_mib"] - sum(vm_mem)
    assert h1["vcpus_free"] == h1["vcpu_limit"] - h1["vcpus_used"]
    assert [h["path"] for h in c.get("/v1/hosts", params={"selector": "rack=r7"}).json()["items"]] == [HOST2]
    regions = {r["name"]: r for r in c.get("/v1/regions").json()["items"]}
    east = regions["us-east"]
    east_hosts = [h for h in hosts.values() if h["region"] == "us-east"]
    assert east["hosts"] == len(east_hosts)
    assert east["memory_used_mib"] == sum(h["memory_used_mib"] for h in east_hosts)
    assert east["memory_free_mib"] == east["memory_mib"] - east["memory_used_mib"]


def test_describe_a_migrated_vm_lists_its_transactions_by_name(server: Server, vms: dict[str, Any]) -> None:
    d = run(server, "migrate_vm", {"vm": "view-c", "dest": HOST})
    assert d["state"] == "COMMITTED", d
    run(server, "stop_vm", {"vm": "us-east/view-c"})
    r = server.client(VIEWER).get("/v1/describe", params={"ref": "view-c"})
    assert r.status_code == 200, r.text
    desc = r.json()
    assert desc["path"] == f"{HOST}/view-c" and desc["kind"] == "vm"
    assert desc["capacity"]["of"] == HOST
    procs = [t["procedure"] for t in desc["transactions"]]
    assert procs == ["stop_vm", "migrate_vm", "spawn_vm"]  # the spawn happened on host-02
    assert desc["transactions"][-1]["id"] == vms["view-c"]["id"]
    host = server.client(VIEWER).get("/v1/describe", params={"ref": "us-east/host-01"}).json()
    assert host["kind"] == "host" and host["children"]["by_kind"]["vm"] >= 3
    assert host["capacity"]["memory_used_mib"] >= 1024 + 2048 + 512
    region = server.client(VIEWER).get("/v1/describe", params={"ref": "us-east"}).json()
    assert (
        region["kind"] == "region" and region["capacity"]["hosts"] if "hosts" in region["capacity"] else True
    )
    uid = desc["attrs"]["uid"]
    by_uid = server.client(VIEWER).get("/v1/describe", params={"ref": uid}).json()
    assert by_uid["path"] == desc["path"] and by_uid["transactions"] == desc["transactions"]
    eu = {
        **spawn_args("view-c", host="/compute/eu-west/host-01"),
        "image": "/storage/eu-west/san-1/img-ubuntu",
    }
    twin = run(server, "spawn_vm", eu)
    assert twin["state"] == "COMMITTED", twin
    both = server.client(VIEWER).get("/v1/describe", params={"ref": "view-c"})
    assert both.status_code == 422 and both.json()["error"]["code"] == "ambiguous_name"
    assert "/compute/eu-west/host-01/view-c" in both.json()["error"]["message"]
    missing = server.client(VIEWER).get("/v1/describe", params={"ref": "nobody"})
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]["message"]


def test_cli_get_in_every_format(server: Server, vms: dict[str, Any]) -> None:
    code, out, _ = cli(server, "get", "vms", "-l", "app=web")
    assert code == 0 and "view-a" in out and "view-b" in out and "view-c" not in out
    assert "UID" in out and "IMAGE" not in out
    code, out, _ = cli(server, "get", "vms", "-l", "app=web", "-l", "tier=front", "-o", "wide")
    assert code == 0 and "view-a" in out and "view-b" not in out and "IMAGE" in out and "tier=front" in out
    code, out, _ = cli(server, "get", "vms", "-o", "json")
    data = json.loads(out)
    assert data["kind"] == "vms" and {"view-a", "view-b"} <= {v["name"] for v in data["items"]}
    code, out, _ = cli(server, "get", "hosts", "-o", "yaml")
    data = yaml.safe_load(out)
    assert code == 0 and HOST in [h["path"] for h in data["items"]]
    assert all("memory_free_mib" in h for h in data["items"])
    code, out, _ = cli(server, "get", "vms", "-o", "name", "-l", "app=web")
    assert out.split() == [f"{HOST}/view-a", f"{HOST}/view-b"]
    code, out, _ = cli(server, "get", "hosts")
    assert code == 0 and "host-01" in out and "free" in out
    code, out, _ = cli(server, "get", "regions", "-o", "wide")
    assert code == 0 and "us-east" in out and "FREE MEMORY" in out
    code, _, err = cli(server, "get", "volumes")
    assert code == 2 and "vms, hosts or regions" in err
    code, _, err = cli(server, "get", "vms", "-l", "=x")
    assert code == 2 and "selector" in err


def test_cli_describe_and_names_in_plan_and_submit(server: Server, vms: dict[str, Any]) -> None:
    code, out, _ = cli(
        server, "plan", "resize_vm", "vm=view-a", "vcpus=2", "memory_mib=1024", "--json", token=OPERATOR
    )
    assert code == 0 and json.loads(out)["actions"][0]["path"] == f"{HOST}/view-a"
    code, out, _ = cli(
        server, "submit", "resize_vm", "vm=us-east/view-a", "vcpus=2", "memory_mib=1024", token=OPERATOR
    )
    assert code == 0 and "COMMITTED" in out
    code, out, _ = cli(server, "describe", "view-a")
    assert code == 0 and f"{HOST}/view-a" in out and "resize_vm" in out and "spawn_vm" in out
    assert "Capacity" in out
    code, out, _ = cli(server, "describe", HOST, "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["capacity"]["vms"] >= 3
    code, _, err = cli(server, "describe", "ghost-vm")
    assert code == 2 and "ghost-vm" in err


def test_tree_shows_vms_by_default_and_hides_them_on_request(server: Server, vms: dict[str, Any]) -> None:
    code, out, _ = cli(server, "tree")
    assert code == 0 and "view-a vm" in out
    code, out, _ = cli(server, "tree", "--hide-vms")
    assert code == 0 and "view-a vm" not in out and "VMs)" in out


def test_capacity_metrics_per_host_and_region(server: Server, vms: dict[str, Any]) -> None:
    text = server.client(VIEWER).get("/metrics").text
    used = server.controller.call(lambda: server.model.index.used(HOST))
    assert f'tropic_host_memory_used_mib{{host="{HOST}"}} {float(used[1])}' in text
    assert f'tropic_host_vms{{host="{HOST}"}} {float(used[2])}' in text
    assert 'tropic_region_memory_free_mib{region="us-east"}' in text
    assert "tropic_host_series_dropped 0.0" in text


def test_describe_leaves_out_an_earlier_vm_of_the_same_path(server: Server) -> None:
    first = run(server, "spawn_vm", spawn_args("again", host=HOST2))
    assert run(server, "destroy_vm", {"vm": "us-east/again"})["state"] == "COMMITTED"
    second = run(server, "spawn_vm", spawn_args("again", host=HOST2))
    assert first["state"] == second["state"] == "COMMITTED"
    desc = server.client(VIEWER).get("/v1/describe", params={"ref": "us-east/again"}).json()
    assert [t["id"] for t in desc["transactions"]] == [second["id"]]
    assert desc["attrs"]["uid"] != first["actions"][-1]["args"]["uid"]
