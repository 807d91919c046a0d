"""Fixtures for the tests that need a real ZooKeeper: one 3-node loopback ensemble for the session.

Tests that kill servers need not restart them: every ``zk_uri``/``zk_client`` user starts from a full,
serving ensemble.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # tests/ is no package; the harness is shared with benchmarks/
    sys.path.insert(0, _TESTS)

from zkharness import ZooKeeperEnsemble, find_zookeeper  # noqa: E402

NOT_INSTALLED = (
    "ZooKeeper is not installed (no java or no /usr/share/java/zookeeper.jar): "
    "run scripts/install-zookeeper.sh, as `make test` does"
)


@pytest.fixture(scope="session")
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    """A started 3-server ensemble; skipped (failed if TROPIC_REQUIRE_ZOOKEEPER=1) when not installed."""
    install = find_zookeeper()
    if install is None:
        if os.environ.get("TROPIC_REQUIRE_ZOOKEEPER") == "1":
            pytest.fail(NOT_INSTALLED)
        pytest.skip(NOT_INSTALLED)
    ensemble = ZooKeeperEnsemble(tmp_path_factory.mktemp("zk"), size=3, install=install)
    try:
        ensemble.start_all(timeout=60)
        yield ensemble
    finally:
        ensemble.close()


@pytest.fixture
def zk_uri(zk_ensemble: ZooKeeperEnsemble, request: pytest.FixtureRequest) -> str:
    """``zk://<all servers>/tropic-tests/<test>-<random>``: a chroot of the test's own."""
    zk_ensemble.restore(timeout=60)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    return zk_ensemble.uri(f"/tropic-tests/{name}-{uuid.uuid4().hex[:8]}")


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
