"""Acceptance: a hot host triggers relief within a bounded time although the autopilot's period is an
hour, on a running embedded server: the loop reads its sensors between passes (without recording those
readings), and a host reading at or above the hot threshold asks for a pass at once (once per
``hot_gap_s`` for a host that stays hot)."""

from __future__ import annotations

import time
from pathlib import Path

from autopilot.served import served
from tropic.autopilot.base import Observation
from tropic.autopilot.decisions import ACTED

HOT = "/compute/us-east/host-01"
IMAGE = "/storage/us-east/san-1/img-ubuntu"


def test_a_hot_host_triggers_relief_within_seconds_when_the_period_is_an_hour(tmp_path: Path) -> None:
    with served(tmp_path, policies="hotspot", interval=3600, sense_interval=0.2) as s:
        for name, vcpus in (("big", 8), ("mid", 4), ("small", 4)):
            s.run("spawn_vm", {"name": name, "host": HOT, "image": IMAGE, "vcpus": vcpus, "memory_mib": 1024})
        a = s.autopilot
        assert a.status()["sense_interval_s"] == 0.2 and a.decisions.total == 0
        start = time.monotonic()
        s.load.cpu_of.update(big=1.0, mid=1.0, small=0.75)  # 15 of 16 cores: 94% >= 90%
        assert s.ctl._wait_until(lambda: any(d.status == ACTED for d in a.decisions.recent()), 60)
        elapsed = time.monotonic() - start
        decisions = a.decisions.recent()
        assert all(d.trigger == f"hot:{HOT}" for d in decisions), [d.trigger for d in decisions]
        [d] = [d for d in decisions if d.status == ACTED]
        assert [(st.procedure, st.args["vm"], st.state) for st in d.steps] == [
            ("migrate_vm", f"{HOT}/small", "COMMITTED")
        ]
        assert s.host_of("small") != HOT and s.host_of("big") == HOT
        assert elapsed < 60 and a.passes_run == len(decisions)  # no periodic pass: the hour never came
        # The readings between passes were looked at, not kept: the host's series has one per pass.
        kept = [r for r in s.ctl.store.observations(HOT, "cpu", limit=10_000) if r[0] == HOT]
        assert len(kept) == a.passes_run


def test_a_host_that_stays_hot_asks_for_a_pass_once_per_gap(tmp_path: Path) -> None:
    with served(tmp_path, policies="hotspot", interval=3600, sense_interval=3600) as s:
        a = s.autopilot
        now = s.clock.now
        assert a.observe(Observation(HOT, "cpu", 0.95, now))
        assert not a.observe(Observation(HOT, "cpu", 0.97, now + 10))  # within hot_gap_s (300 s)
        assert not a.observe(Observation(HOT, "cpu", 0.5, now + 400))  # cool: nothing
        assert not a.observe(Observation(f"{HOT}/vm", "cpu", 1.0, now + 400))  # a VM is not a host
        assert a.observe(Observation(HOT, "cpu", 0.95, now + 400))
        assert a.sense_now() == 0  # the sim plays nothing hot
