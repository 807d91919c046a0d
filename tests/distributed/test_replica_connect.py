"""A replica started while its ensemble is down keeps trying under its retry policy: it leads once the
ensemble answers, and a stop ends its waiting at once."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from core.helpers import small_dc
from tropic.cluster.replica import Replica, ReplicaConfig
from tropic.drivers import SimDriver
from zkharness import free_ports


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def retried(caplog: pytest.LogCaptureFixture) -> bool:
    return any("retrying in" in r.getMessage() for r in caplog.records)


def test_a_stop_ends_the_wait_for_an_unreachable_ensemble(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tropic.cluster.replica")
    (port,) = free_ports(1)  # nothing listens there
    config = ReplicaConfig(f"zk://127.0.0.1:{port}/t", "c0", connect_timeout=0.5)
    replica = Replica(config, SimDriver(), initial=small_dc)
    runner = threading.Thread(target=replica.run, daemon=True)
    runner.start()
    wait_for(lambda: retried(caplog), 60, "a retry of the connection")
    replica.stop()
    runner.join(30)
    assert not runner.is_alive()
    assert replica.client is None and replica.terms == 0
    message = next(r.getMessage() for r in caplog.records if "retrying in" in r.getMessage())
    assert f"127.0.0.1:{port}" in message  # names the ensemble it cannot reach


def test_a_replica_leads_once_its_ensemble_comes_up(
    zk_ensemble: Any, zk_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tropic.cluster.replica")
    zk_ensemble.stop_all()  # the next user of the ensemble restores it
    led = threading.Event()
    config = ReplicaConfig(zk_uri, "c0", connect_timeout=1.0)
    replica = Replica(config, SimDriver(), initial=small_dc, on_lead=lambda c: led.set())
    runner = threading.Thread(target=replica.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: retried(caplog), 60, "a retry of the connection")
        assert not led.is_set()
        zk_ensemble.restore(timeout=60)
        assert led.wait(120), "the replica did not lead after the ensemble came back"
        assert replica.terms == 1
    finally:
        replica.stop()
        runner.join(60)
    assert not runner.is_alive()
