"""``tropic inventory check|plan|apply|export`` against a real ``tropic serve --inventory`` process: a
changed copy of the sim example is planned (exit 1, one line per resource), applied (exit 0), then plans
clean (exit 0); a refused change exits 1 naming the transaction and why; export reads back as the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from inventory_harness import SIM, Serve, environment, tropic

from tropic.inventory import diff, load, loads
from tropic.inventory.remote import fetch_tree


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return environment(tmp_path)


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[Serve]:
    s = Serve(env, tmp_path / "fleet.db", "--inventory", str(SIM))
    yield s
    s.kill()


def changed_copy(tmp_path: Path) -> Path:
    text = SIM.read_text()
    text = text.replace('labels = { tier = "web" }', 'labels = { tier = "web", team = "a" }')
    text = text.replace('{ name = "router-3", role = "backup" },', "")
    text = text.replace(
        '[[hosts]]\nname = "kvm-1"\nregion = "eu-west"',
        '[[hosts]]\nname = "kvm-3"\nregion = "us-east"\ncpus = 8\nmemory_mib = 8192\n\n'
        '[[hosts]]\nname = "kvm-1"\nregion = "eu-west"',
    )
    text = text.replace(
        '[[regions]]\nname = "eu-west"', '[[regions]]\nname = "ap"\n\n[[regions]]\nname = "eu-west"'
    )
    out = tmp_path / "changed.toml"
    out.write_text(text)
    return out


def test_plan_then_apply_then_nothing_to_do(tmp_path: Path, env: dict[str, str], server: Serve) -> None:
    changed = changed_copy(tmp_path)
    url = ["--url", server.url]
    plan = tropic(env, "inventory", "plan", str(changed), *url)
    assert plan.returncode == 1, plan.stderr
    lines = plan.stdout.splitlines()
    assert "+ /compute/ap (region, location -)" in lines
    assert "+ /compute/us-east/kvm-3 (host, 8 cpus, 8192 MiB)" in lines
    assert "~ /compute/us-east/kvm-1 labels: {tier: web} -> {team: a, tier: web}" in lines
    assert "- /network/us-east/router-3" in lines
    assert lines[-1] == "Plan: 2 to add, 1 to change, 1 to remove."
    refused = tropic(env, "inventory", "apply", str(changed), *url)  # not a terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    applied = tropic(env, "inventory", "apply", str(changed), *url, "--yes", "--json")
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    assert report["ok"] and [s["procedure"] for s in report["steps"]] == [
        "add_region",
        "configure_host",
        "add_host",
        "remove_router",
    ]
    again = tropic(env, "inventory", "plan", str(changed), *url, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] == []
    exported = tropic(env, "inventory", "export", *url, "--format", "yaml")
    assert exported.returncode == 0, exported.stderr
    back = loads(exported.stdout, "yaml", "exported.yaml")
    from tropic.api.client import Client

    with Client(server.url, (tmp_path / "token").read_text().strip()) as c:
        assert diff(back, fetch_tree(c), vms=True) == []
        assert diff(load(changed), fetch_tree(c)) == []


def test_a_transaction_that_does_not_commit_is_named_with_its_reason(
    tmp_path: Path, env: dict[str, str], server: Serve
) -> None:
    text = SIM.read_text().replace("cpu_overcommit = 2.0", "cpu_overcommit = 0.1")  # kvm-2: 1.6 vCPUs
    # With its VMs listed, the file itself is refused: batch-1's 4 vCPUs would not fit.
    (tmp_path / "shrink.toml").write_text(text)
    out = tropic(env, "inventory", "check", str(tmp_path / "shrink.toml"))
    assert out.returncode == 2 and "hosts[1].cpus:" in out.stderr, out.stderr
    # Without them, the file cannot know: the server refuses the change, and apply says which and why.
    no_vms = text[: text.index("[[vms]]")]
    shrink = tmp_path / "shrink.toml"
    shrink.write_text(no_vms)
    out = tropic(env, "inventory", "apply", str(shrink), "--url", server.url, "--yes")
    assert out.returncode == 1
    assert "configure_host /compute/us-east/kvm-2" in out.stderr and "ABORTED" in out.stderr
    assert "vCPUs" in out.stderr, out.stderr


def test_check_and_a_bad_file_change_nothing(tmp_path: Path, env: dict[str, str], server: Serve) -> None:
    ok = tropic(env, "inventory", "check", str(SIM), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["hosts"] == 3
    bad = tmp_path / "bad.toml"
    bad.write_text(SIM.read_text().replace('name = "kvm-2"', 'name = "kvm-2"\ncolour = "red"'))
    out = tropic(env, "inventory", "apply", str(bad), "--url", server.url, "--yes")
    assert out.returncode == 2 and f"{bad}:" in out.stderr and "hosts[1].colour: unknown field" in out.stderr
    plan = tropic(env, "inventory", "plan", str(SIM), "--url", server.url)
    assert plan.returncode == 0 and "No changes" in plan.stdout
