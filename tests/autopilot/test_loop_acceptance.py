"""Acceptance bullets of the loop on a running embedded server: a stale sensor is flagged and its host is
left alone (even when it was hot); a policy whose solver times out leaves the configuration as it is and
logs why; bad ``tropic serve --autopilot`` input is one clear error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autopilot.served import http, served
from tropic.autopilot.decisions import ACTED, IDLE
from tropic.cli.main import app
from tropic.service.autopilot import SensedSource

HOT = "/compute/us-east/host-01"
IMAGE = "/storage/us-east/san-1/img-ubuntu"


def test_a_stale_sensor_is_flagged_and_its_host_left_alone(tmp_path: Path) -> None:
    with served(tmp_path, policies="hotspot", interval=3600, sense_interval=3600, samples=12) as s:
        for name, vcpus in (("big", 8), ("mid", 4), ("small", 4)):
            s.run("spawn_vm", {"name": name, "host": HOT, "image": IMAGE, "vcpus": vcpus, "memory_mib": 1024})
        a = s.autopilot
        source = a.source
        assert isinstance(source, SensedSource)
        s.load.cpu_of.update(big=1.0, mid=1.0, small=0.75)  # 94%: hot
        source.sense(s.clock.now)  # the hot readings are recorded (no pass yet)
        # From now on the host's sensor reads nothing: 1,000 s later its readings are too old to trust.
        s.load.unread = {"big", "mid", "small"}
        s.clock.advance(1000)
        [d] = a.run_once()
        assert d.status == IDLE and "no host above" in d.why, d.why
        assert HOT in d.stale and f"{HOT}/small" in d.stale and HOT not in d.utilisation  # flagged, not 0%
        assert any(HOT in e for e in source.sensor.errors)  # the sensor says what it could not read
        assert s.host_of("small") == HOT and s.host_of("big") == HOT  # left alone
        with http(s.service) as url:  # and the operator sees which subjects were stale
            r = CliRunner().invoke(
                app, ["autopilot", "decisions", "--url", url, "--token", "x" * 32], env={"COLUMNS": "400"}
            )
        assert r.exit_code == 0 and f"stale (left alone): {HOT}" in r.stdout, r.output
        # The readings come back: the same host, hot, is relieved at once.
        s.load.unread = set()
        s.clock.advance(300)
        [d] = a.run_once()
        assert d.status == ACTED and not d.stale and d.steps[0].args["vm"].startswith(HOT + "/")
        assert d.steps[0].state == "COMMITTED"


def test_a_solver_that_times_out_leaves_the_configuration_and_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with served(tmp_path, policies="consolidation", interval=3600, sense_interval=3600, time_limit=1e-9) as s:
        hosts = s.ctl.call(lambda: sorted(p for p, n in s.ctl.model.nodes.items() if n.kind == "host"))
        for i, host in enumerate(hosts):  # one light VM on every host: no host is idle, all could merge
            region = host.split("/")[2]
            image = f"/storage/{region}/san-1/img-ubuntu"
            s.run("spawn_vm", {"name": f"v{i}", "host": host, "image": image, "vcpus": 2, "memory_mib": 1024})
            s.load.cpu_of[f"v{i}"] = 0.2
        before = s.ctl.call(lambda: dict(s.ctl.model.nodes))
        a = s.autopilot
        with caplog.at_level(logging.INFO, logger="tropic.autopilot"):
            [d] = a.run_once()
        assert d.status == IDLE and "timed out" in d.why and "stays as it is" in d.why, d.why
        assert not d.steps and s.ctl.call(lambda: dict(s.ctl.model.nodes)) == before
        assert any("timed out" in r.getMessage() and d.pass_id in r.getMessage() for r in caplog.records)
        # Given time, the same pass on the same fleet consolidates: the timeout was what held it.
        a.time_limit = 10.0
        s.clock.advance(300)
        [d] = a.run_once()
        assert d.status == ACTED and d.steps and all(st.committed for st in d.steps), d.steps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--autopilot", "nope"],
            "--autopilot: unknown autopilot policy 'nope'; known: consolidation, hotspot",
        ),
        (["--autopilot", "psepr"], "autopilot policy 'psepr' needs the managed service"),
        (["--autopilot", "hotspot:x"], "autopilot policy 'hotspot' takes no target"),
        (["--autopilot", "hotspot,sun"], "autopilot policy 'sun' needs the managed service"),
        (["--autopilot", "hotspot", "--sim-trace", "BAD"], "--sim-trace: "),
    ],
)
def test_bad_serve_autopilot_input_is_one_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("vm,u0\na,xx\n")
    store = tmp_path / "store.db"
    args = [str(bad) if a == "BAD" else a for a in args]
    r = CliRunner().invoke(app, ["serve", "--store", f"sqlite:///{store}", "--port", "0", *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output and not store.exists()  # refused before anything was opened
