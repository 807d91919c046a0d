"""Shared fixtures: a small generated datacenter on the sim driver, and the repository paths."""

from __future__ import annotations

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
