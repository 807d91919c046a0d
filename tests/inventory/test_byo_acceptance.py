"""Bring your own infrastructure, end to end as an operator does it, on a real server process: serve an
inventory file (libvirt's test hypervisor; then sim and libvirt side by side), spawn without naming a
host, restart (no host fenced), drain a host and remove it, and find the devices consistent with the
model (the live check: no drift anywhere)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inventory_harness import LIBVIRT, REPO, Serve, environment, tropic

from tropic.api.client import Client

MIXED = REPO / "examples" / "inventory-mixed.toml"

pytest.importorskip("libvirt", reason="the libvirt binding is not installed (scripts/install-libvirt.sh)")


@pytest.fixture
def servers() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()


def cli(env: dict[str, str], url: str, *args: str) -> str:
    out = tropic({**env, "TROPIC_URL": url}, *args)
    assert out.returncode == 0, f"tropic {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out.stdout


def vms(env: dict[str, str], url: str) -> dict[str, dict[str, object]]:
    return {v["name"]: v for v in json.loads(cli(env, url, "get", "vms", "-o", "json"))["items"]}


def consistent(url: str, token: str) -> None:
    with Client(url, token) as c:
        assert c.stats()["fenced"] == []
        assert c.drift("/")["items"] == []


def operate(tmp_path: Path, servers: list[Serve], inventory: Path, regions: list[str]) -> None:
    env = environment(tmp_path)
    store = tmp_path / "fleet.db"
    driver = ["--driver", "libvirt+test:///default"]
    servers.append(s := Serve(env, store, "--inventory", str(inventory), *driver))
    token = (tmp_path / "token").read_text().strip()
    # Spawn without naming a host: the service places each VM during simulation.
    for region in regions:
        for i in (1, 2):
            image = f"image=/storage/{region}/san-1/img-ubuntu"
            cli(env, s.url, "submit", "spawn_vm", f"name={region}-{i}", image, "vcpus=2", "memory_mib=2048",
                f"region={region}")  # fmt: skip
    placed = vms(env, s.url)
    assert sorted(placed) == sorted(f"{r}-{i}" for r in regions for i in (1, 2))
    consistent(s.url, token)
    # Restart: the drivers are bound to the model again; nothing healthy is fenced.
    s.stop()
    servers.append(s := Serve(env, store, *driver))
    consistent(s.url, token)
    assert vms(env, s.url).keys() == placed.keys()
    # Drain the host of each region's first VM, then remove it.
    for region in regions:
        host = f"/compute/{region}/{vms(env, s.url)[f'{region}-1']['host']}"
        drained = json.loads(cli(env, s.url, "host", "drain", host, "--json"))
        assert drained["ok"] and drained["stuck"] == {} and drained["moved"], drained
        cli(env, s.url, "submit", "remove_host", f"host={host}")
        hosts = {h["name"] for h in json.loads(cli(env, s.url, "get", "hosts", "-o", "json"))["items"]
                 if h["region"] == region}  # fmt: skip
        assert host.rsplit("/", 1)[1] not in hosts and hosts
        assert {v["region"] for v in vms(env, s.url).values()} >= {region}
    consistent(s.url, token)
    s.stop()


def test_a_libvirt_fleet_from_its_inventory_file(tmp_path: Path, servers: list[Serve]) -> None:
    operate(tmp_path, servers, LIBVIRT, ["lab"])


def test_a_mixed_sim_and_libvirt_fleet_from_its_inventory_file(tmp_path: Path, servers: list[Serve]) -> None:
    operate(tmp_path, servers, MIXED, ["sim-east", "lab"])
