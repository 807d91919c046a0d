"""``tropic serve --inventory``: a fresh store starts with the file's fleet on its devices; a restart
with the same file serves it, a different file is refused naming the first difference; a bad file is
refused naming file, line and field before any store or device file exists."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from inventory_harness import LIBVIRT, SIM, Serve, environment, tropic

from tropic.api.client import Client


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return environment(tmp_path)


@pytest.fixture
def servers() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()


def test_serve_starts_a_fresh_store_from_the_sim_example(
    tmp_path: Path, env: dict[str, str], servers: list[Serve]
) -> None:
    store = tmp_path / "fleet.db"
    servers.append(s := Serve(env, store, "--inventory", str(SIM)))
    token = (tmp_path / "token").read_text().strip()
    with Client(s.url, token) as c:
        compute = c.resources("/compute", depth=3)
        regions = {r["name"]: r for r in compute["children"]}
        assert sorted(regions) == ["eu-west", "us-east"]
        assert regions["us-east"]["attrs"]["timezone"] == "America/New_York"
        hosts = {h["name"]: h for h in regions["us-east"]["children"]}
        assert hosts["kvm-1"]["attrs"]["labels"] == {"tier": "web"}
        assert [v["name"] for v in hosts["kvm-1"]["children"]] == ["web-1"]
        spawn = {
            "host": "/compute/eu-west/kvm-1",
            "name": "app-1",
            "image": "/storage/eu-west/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 512,
        }
        done = c.wait(c.submit("spawn_vm", spawn)["id"], timeout=120)
        assert done["state"] == "COMMITTED", done
        assert c.drift("/")["items"] == []  # the devices were provisioned to match the model
    s.stop()
    check = tropic(env, "check", "--store", str(store), "--json")
    assert check.returncode == 0, check.stderr
    # The same file again: the store's fleet matches it (VMs aside), so it is served.
    servers.append(s := Serve(env, store, "--inventory", str(SIM)))
    s.stop()
    # A different file: refused, naming the difference and the way to apply it; the store is unchanged.
    changed = tmp_path / "changed.toml"
    changed.write_text(SIM.read_text().replace("cpus = 8", "cpus = 4"))
    out = tropic(env, "serve", "--store", str(store), "--port", "0", "--inventory", str(changed))
    assert out.returncode == 2
    assert "/compute/eu-west/kvm-1 cpus: 8 -> 4" in out.stderr and "tropic inventory apply" in out.stderr


BAD = {
    "unknown field": ("cpus = 8\n", "cpus = 8\nspeed = 3\n", "hosts[2].speed: unknown field"),
    "wrong type": ("cpus = 8\n", 'cpus = "8"\n', "hosts[2].cpus: Input should be a valid integer"),
    "duplicate name": ('name = "kvm-2"\n', 'name = "kvm-1"\n', "hosts[1].name: duplicate host"),
    "unknown driver": (
        'driver = "sim"\ncpus = 8',
        'driver = "xen"\ncpus = 8',
        "hosts[2].driver: unknown driver",
    ),
    "capacity below VMs": (
        "memory_mib = 32768\ncpu_overcommit",
        "memory_mib = 1024\ncpu_overcommit",
        "hosts[1].memory_mib:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_changes_nothing(tmp_path: Path, env: dict[str, str], case: str) -> None:
    old, new, expected = BAD[case]
    text = SIM.read_text()
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    store = tmp_path / "fleet.db"
    out = tropic(env, "serve", "--store", str(store), "--port", "0", "--inventory", str(bad))
    assert out.returncode == 2, out.stderr
    first = out.stderr.strip().splitlines()[0]
    assert first.startswith(f"error: {bad}:") and expected in first, out.stderr
    line = int(first.split(":")[2])
    assert line > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # no store, no devices, no token


def test_a_sim_host_without_capacity_is_refused_before_anything_is_opened(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SIM.read_text().replace("cpus = 8\n", "", 1))
    out = tropic(env, "serve", "--store", str(tmp_path / "s.db"), "--port", "0", "--inventory", str(bad))
    assert out.returncode == 2
    assert "hosts[2].cpus:" in out.stderr and "eu-west/kvm-1" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_serve_starts_a_fresh_store_from_the_libvirt_example(
    tmp_path: Path, env: dict[str, str], servers: list[Serve]
) -> None:
    pytest.importorskip("libvirt", reason="the libvirt binding is not installed (scripts/install-libvirt.sh)")
    if importlib.util.find_spec("tropic.drivers.router") is None:
        pytest.skip('hosts with driver = "libvirt" need the multi-backend router (tropic.drivers.router)')
    store = tmp_path / "lab.db"
    servers.append(s := Serve(env, store, "--inventory", str(LIBVIRT), "--driver", "libvirt+test:///default"))
    token = (tmp_path / "token").read_text().strip()
    with Client(s.url, token) as c:
        host = c.resources("/compute/lab/kvm-1", depth=0)
        # Told by the device: the file leaves kvm-1's capacity out; its private test node has 16 CPUs, 32 GiB.
        assert (host["attrs"]["cpus"], host["attrs"]["memory_mib"]) == (16, 32768)
        assert host["attrs"]["driver"] == "libvirt"
    s.stop()
