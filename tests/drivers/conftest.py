"""Fixtures of the driver conformance suite: the same behaviour tests run against every driver.

``driver_kind`` is parametrised over every driver (libvirt skips, saying how to install it, only when
libvirt-python cannot be imported); ``world`` is a small datacenter loaded into that driver.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.kit import DRIVERS, HAVE_LIBVIRT, LIBVIRT_MISSING, Probe, World, make_driver, small_datacenter
from tropic.drivers import SimDriver
from tropic.model import project


@pytest.fixture(params=DRIVERS)
def driver_kind(request: pytest.FixtureRequest) -> str:
    kind = str(request.param)
    if kind == "libvirt" and not HAVE_LIBVIRT:
        pytest.skip(LIBVIRT_MISSING)
    return kind


@pytest.fixture
def world(driver_kind: str) -> Iterator[World]:
    model = small_datacenter()
    driver = make_driver(driver_kind)
    driver.load(project(model))  # type: ignore[attr-defined]
    reference = SimDriver()
    reference.load(project(model))
    try:
        yield World(driver_kind, model, driver, reference, Probe(driver))
    finally:
        driver.close()
