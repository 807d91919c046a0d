"""Helpers for the core tests: argument builders and the invariant checks every scenario ends with."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tropic.model import Model, audit
from tropic.scenario import DatacenterSpec, build_datacenter, host_path, image_path
from tropic.txn import FINAL, Controller


def small_dc(hosts: int = 3, memory_mib: int = 16384, regions: tuple[str, ...] = ("r1", "r2")) -> Model:
    return build_datacenter(
        DatacenterSpec(regions=regions, hosts_per_region=hosts, host_memory_mib=memory_mib)
    )


def spawn(region: str, host: int, name: str, memory_mib: int = 2048, vcpus: int = 1) -> dict[str, Any]:
    return {
        "host": host_path(region, host),
        "name": name,
        "image": image_path(region),
        "vcpus": vcpus,
        "memory_mib": memory_mib,
    }


def vm(region: str, host: int, name: str) -> str:
    return f"{host_path(region, host)}/{name}"


def assert_invariants(c: Controller) -> dict[str, Any]:
    """Every transaction final, no lock held, no constraint violated, logical == physical (not fenced)."""
    assert c.drain(60), "transactions still running after 60 s"
    report = c.check()
    assert all(t.state in FINAL for t in c.transactions())
    assert report["locks_held"] == 0, c.locks.holders()
    assert len(c._scheduler.reserved) == 0  # no deferred transaction keeps a reservation
    assert report["in_flight"] == 0
    assert report["violations"] == [], report["violations"]
    assert audit(c.model) == []
    assert report["consistent"], report["differences"]
    assert report["orphans"] == []
    for t in c.transactions():
        if t.state.value == "FAILED":
            assert t.left_behind, f"FAILED transaction {t.id} lists nothing left behind"
            assert all(p in c.fenced for p in t.left_behind)
    return report


WAIT_S = 60.0  # generous: how long a test waits for what it expects (a loaded machine is slow, not wrong)


def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Wait for ``predicate``; fail naming ``what`` if it does not hold within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.005)
