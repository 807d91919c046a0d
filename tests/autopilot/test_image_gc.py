"""The ``image-gc`` autopilot policy: old image versions are collected by ``gc_image`` transactions the
autopilot decides (the newest K and versions younger than the age limit kept), never a version in use
(open by a session, or backing a volume), and a catalog with nothing to collect costs no transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from autopilot.loop_helpers import Clock
from core.helpers import assert_invariants
from geo.helpers import World, build, ok, start
from tropic.autopilot.actuator import ControllerExecutor
from tropic.autopilot.base import ImageState, ImageVersionState, PolicyError, Snapshot
from tropic.autopilot.coordinator import Coordinator
from tropic.autopilot.decisions import ACTED, IDLE, Decision
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.passes import MemoryPassBook
from tropic.autopilot.policies import make_policy, parse_policies
from tropic.autopilot.policies.image_gc import ImageGC
from tropic.procedures.images import versions_of

DAY = 86400.0
NOW = 2_000_000_000.0  # the passes' clock: after every real publish time of the world


def snap(*versions: tuple[int, float, tuple[str, ...]], latest: int | None = None) -> Snapshot:
    vs = tuple(ImageVersionState(v, at, 100, use) for v, at, use in versions)
    img = ImageState("/images/zk", latest if latest is not None else vs[-1].version, vs)
    return Snapshot(NOW, {}, {}, images={img.path: img})


def test_retention_keeps_the_newest_k_the_young_and_those_in_use() -> None:
    old = NOW - 30 * DAY
    s = snap(
        (1, old, ("open by reader",)),
        (2, old, ()),
        (3, NOW - 10 * DAY, ()),
        (4, NOW - 2 * DAY, ()),  # younger than 7 days: kept whatever keep says
        (5, old, ()),  # the newest two (5, 6) are kept whatever their age
        (6, old, ()),
    )
    plan = ImageGC(keep=2, max_age_s=7 * DAY).plan(s, budget=10, time_limit=1)
    [c] = plan.collect
    assert (c.image, c.keep, c.published_before, c.versions) == ("zk", 2, NOW - 7 * DAY, (2, 3))
    assert plan.gain == 200 and plan.cost == 0 and "/images/zk/v1: open by reader" in plan.why
    assert ImageGC(keep=6).plan(s, budget=10, time_limit=1).empty
    assert ImageGC(keep=1, max_age_s=60 * DAY).plan(s, budget=10, time_limit=1).empty
    # the latest is never collected
    assert ImageGC(keep=1, max_age_s=0).plan(snap((1, NOW - DAY, ())), budget=1, time_limit=1).empty


@pytest.mark.parametrize(
    ("spec", "keep", "age"),
    [
        ("image-gc", 3, 7 * DAY),
        ("image-gc:5/30d", 5, 30 * DAY),
        ("image-gc:2/0", 2, 0.0),
        ("image-gc:4", 4, 7 * DAY),
    ],
)
def test_the_policy_by_name_with_its_retention(spec: str, keep: int, age: float) -> None:
    assert parse_policies(f"hotspot,{spec}") == ["hotspot", spec]
    p = make_policy(spec)
    assert isinstance(p, ImageGC) and (p.keep, p.max_age_s) == (keep, age)


@pytest.mark.parametrize(
    ("spec", "needle"), [("image-gc:0/1d", ">= 1"), ("image-gc:x", "KEEP"), ("image-gc:3/7y", "AGE")]
)
def test_a_bad_retention_is_one_clear_error(spec: str, needle: str) -> None:
    with pytest.raises(PolicyError) as e:
        make_policy(spec)
    assert needle in e.value.message


@pytest.fixture
def world() -> Iterator[World]:
    ctl, sim = start()
    try:
        yield build(ctl, sim, members=False)
    finally:
        ctl.stop()


def publish(w: World, session: str, digest: str, at: float) -> None:
    ok(w.ctl, "open_image_write", {"image": "zk", "region": "r1", "session": session})
    args = {"image": "zk", "session": session, "digest": digest, "size_mib": 1024, "published_at": at}
    ok(w.ctl, "close_image_write", args)


def autopilot(w: World, policy: ImageGC) -> Coordinator:
    def source(at: float) -> Snapshot:
        return w.ctl.call(lambda: fleet_snapshot(w.ctl.model, at))

    return Coordinator(source, [policy], ControllerExecutor(w.ctl), MemoryPassBook(), clock=Clock(NOW))


def versions(w: World) -> list[int]:
    return [int(v["version"]) for v in w.read(lambda view: versions_of(view, "zk"))]


def gc_txns(w: World) -> list[int]:
    return [t.id for t in w.ctl.transactions() if t.procedure == "gc_image"]


def one_pass(a: Coordinator) -> Decision:
    [d] = a.run_once()
    return d


def test_the_autopilot_collects_by_transactions_never_a_version_in_use(world: World) -> None:
    w = world
    ok(w.ctl, "open_image", {"image": "zk", "region": "r2", "session": "reader"})  # holds v1
    publish(w, "w2", "sha256:02", NOW - 30 * DAY)
    publish(w, "w3", "sha256:03", NOW - 20 * DAY)
    publish(w, "w4", "sha256:04", NOW - 1 * DAY)
    publish(w, "w5", "sha256:05", NOW - 3600)
    a = autopilot(w, ImageGC(keep=2, max_age_s=7 * DAY))

    d = one_pass(a)
    assert d.status == ACTED and [s.procedure for s in d.steps] == ["gc_image"], d
    assert [s.state for s in d.steps] == ["COMMITTED"]
    assert [t.id for t in w.ctl.transactions() if t.procedure == "gc_image"] == [d.steps[0].txn]
    assert versions(w) == [1, 4, 5]  # v2, v3 collected; v1 is open; v4 is young; v5 is the latest
    assert "/images/zk/v1: open by reader" in d.why

    d = one_pass(a)  # nothing left that may go: no transaction
    assert d.status == IDLE and not d.steps and "open by reader" in d.why
    assert len(gc_txns(w)) == 1

    ok(w.ctl, "close_image", {"image": "zk", "session": "reader"})
    d = one_pass(a)
    assert d.status == ACTED and versions(w) == [4, 5]
    assert len(gc_txns(w)) == 2
    assert one_pass(autopilot(w, ImageGC(keep=1, max_age_s=7 * DAY))).status == IDLE  # v4 is young
    assert versions(w) == [4, 5]
    assert_invariants(w.ctl)


def test_a_version_backing_a_volume_is_never_collected_by_the_autopilot() -> None:
    ctl, sim = start()
    try:
        w = build(ctl, sim)  # members m1 (r1) and m2 (r2) run on volumes cloned from version 1
        publish(w, "w2", "sha256:02", NOW - 30 * DAY)
        publish(w, "w3", "sha256:03", NOW - 20 * DAY)
        a = autopilot(w, ImageGC(keep=1, max_age_s=0))
        d = one_pass(a)
        assert d.status == ACTED and versions(w) == [1, 3]
        assert "backs /storage/r1/san-1/vol-m1" in d.why
        assert one_pass(a).status == IDLE and versions(w) == [1, 3]
        assert_invariants(w.ctl)
    finally:
        ctl.stop()


def test_gc_image_keeps_versions_published_after_its_cutoff(world: World) -> None:
    w = world
    publish(w, "w2", "sha256:02", NOW - 30 * DAY)
    publish(w, "w3", "sha256:03", NOW - 1 * DAY)
    publish(w, "w4", "sha256:04", NOW - 3600)
    ok(w.ctl, "gc_image", {"image": "zk", "keep": 1, "published_before": NOW - 7 * DAY})
    assert versions(w) == [3, 4]  # v1 (published in the past of NOW) and v2 went; v3 is young
    ok(w.ctl, "gc_image", {"image": "zk", "keep": 1})  # no cutoff: any age, as before
    assert versions(w) == [4]
