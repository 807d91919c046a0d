"""Shared fixtures: a small generated datacenter on the sim driver, and the repository paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.helpers import small_dc
from tropic.drivers import SimDriver
from tropic.model import Model, project
from tropic.txn import Controller

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


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _no_skip() and report.skipped and "realdata" not in report.nodeid:
        report.outcome = "failed"
        report.longrepr = f"module skipped under TROPIC_NO_SKIP=1: {report.longrepr}"
