"""Shared fixtures: a small generated datacenter on the sim driver, and the repository paths."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from core.helpers import small_dc
from tropic.drivers import SimDriver
from tropic.model import Model, project
from tropic.txn import Controller

# Property tests check what happens, never how fast: no per-example deadline and no "too slow" health
# check, so a loaded or slow machine cannot fail them (a test's own @settings inherits both).
settings.register_profile("tropic", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tropic")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def model() -> Model:
    return small_dc()


@pytest.fixture
def sim(model: Model) -> SimDriver:
    d = SimDriver(seed=1)
    d.load(project(model))
    return d


@pytest.fixture
def ctl(model: Model, sim: SimDriver) -> Iterator[Controller]:
    c = Controller(model, sim, workers=4).start()
    yield c
    c.stop()


# --- `make test` sets TROPIC_NO_SKIP=1: a test that skips because a service or package is missing fails
# the run instead, so CI cannot pass on a machine where ZooKeeper, libvirt or Chromium did not install.
# Tests of the real reference data may still skip when ../shared/data is absent.
def _no_skip() -> bool:
    return os.environ.get("TROPIC_NO_SKIP") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _no_skip() and report.skipped and "realdata" not in item.keywords and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under TROPIC_NO_SKIP=1: {report.longrepr}"


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter files the report as skipped
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _no_skip() and report.skipped and "realdata" not in report.nodeid:
        report.outcome = "failed"
        report.longrepr = f"module skipped under TROPIC_NO_SKIP=1: {report.longrepr}"


# --- ZooKeeper: one real 3-node loopback ensemble for the whole session (tests/zk, tests/distributed) ---
ZOOKEEPER_NOT_INSTALLED = (
    "ZooKeeper is not installed (no java or no /usr/share/java/zookeeper.jar): "
    "run scripts/install-zookeeper.sh, as `make test` does"
)


@pytest.fixture(scope="session")
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A started 3-server ensemble; skipped (failed if TROPIC_REQUIRE_ZOOKEEPER=1) when not installed.
    The fixtures own its lifecycle and data dirs: every server is killed at the end of the session."""
    from zkharness import ZooKeeperEnsemble, find_zookeeper

    install = find_zookeeper()
    if install is None:
        if os.environ.get("TROPIC_REQUIRE_ZOOKEEPER") == "1":
            pytest.fail(ZOOKEEPER_NOT_INSTALLED)
        pytest.skip(ZOOKEEPER_NOT_INSTALLED)
    # 512 MB heap: each server caches its last 500 requests, up to ~400 KB each from tropic's store
    ensemble = ZooKeeperEnsemble(tmp_path_factory.mktemp("zk"), size=3, install=install, heap_mb=512)
    try:
        ensemble.start_all(timeout=60)
        yield ensemble
    finally:
        ensemble.close()


@pytest.fixture
def zk_uri(zk_ensemble: Any, request: pytest.FixtureRequest) -> str:
    """``zk://<all servers>/tropic-tests/<test>-<random>``: a chroot of the test's own. Tests that kill
    servers need not restart them: every user starts from a full, serving ensemble."""
    zk_ensemble.restore(timeout=60)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    uri: str = zk_ensemble.uri(f"/tropic-tests/{name}-{uuid.uuid4().hex[:8]}")
    return uri


@pytest.fixture
def zk_client(zk_uri: str) -> Iterator[Any]:
    """A started kazoo client chrooted at ``zk_uri``; stopped and closed after the test."""
    zkclient = pytest.importorskip("tropic.store.zkclient", reason="kazoo is not installed")
    client = zkclient.open_client(zk_uri, connect_timeout=20)
    try:
        yield client
    finally:
        client.stop()
        client.close()
