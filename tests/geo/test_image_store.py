"""The geo-replicated image store: close-to-open consistency (a reader after a close sees the new
version, one before it keeps the old one), one writer at a time (a second is refused), lazy and eager
propagation with transfer times from the region pair, and collection that never takes a version in use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.helpers import assert_invariants
from geo.helpers import World, build, ok, run, start
from tropic.model.generate import host_path
from tropic.model.images import GeoImage, ImageVersion
from tropic.procedures.images import opened_version, versions_of
from tropic.txn import State


@pytest.fixture
def world() -> Iterator[World]:
    ctl, sim = start()
    try:
        yield build(ctl, sim, members=False)
    finally:
        ctl.stop()


def pinned(w: World, session: str) -> int | None:
    v = w.read(lambda view: opened_version(view, "zk", session))
    return None if v is None else int(w.read(lambda view: view.get(v.path, ImageVersion).version))


def publish(w: World, session: str, digest: str, region: str = "r1") -> None:
    ok(w.ctl, "open_image_write", {"image": "zk", "region": region, "session": session})
    ok(w.ctl, "close_image_write", {"image": "zk", "session": session, "digest": digest, "size_mib": 1024})


def san_images(w: World, region: str) -> list[str]:
    return list(w.sim.inventory()["storage"][f"/storage/{region}/san-1"]["images"])


def test_close_to_open(world: World) -> None:
    w = world
    ok(w.ctl, "open_image", {"image": "zk", "region": "r2", "session": "before"})
    assert pinned(w, "before") == 1
    assert "zk-v1" in san_images(w, "r2")  # fetched lazily on the region's first open

    ok(w.ctl, "open_image_write", {"image": "zk", "region": "r3", "session": "writer"})
    # the data is local to the writer until it closes: an open now still sees version 1
    ok(w.ctl, "open_image", {"image": "zk", "region": "r1", "session": "during"})
    assert pinned(w, "during") == 1
    ok(
        w.ctl,
        "close_image_write",
        {"image": "zk", "session": "writer", "digest": "sha256:02", "size_mib": 3000},
    )

    ok(w.ctl, "open_image", {"image": "zk", "region": "r2", "session": "after"})
    assert pinned(w, "after") == 2  # opened after the close: the new version
    assert pinned(w, "before") == 1 and pinned(w, "during") == 1  # opened before: keep theirs
    t = run(w.ctl, "open_image", {"image": "zk", "region": "r2", "session": "before"})
    assert t.state is State.ABORTED and "already has /images/zk/v1 open" in str(t.error)  # close first
    v2 = w.read(lambda v: v.get("/images/zk/v2", ImageVersion).snapshot())
    assert (v2["digest"], v2["size_mib"]) == ("sha256:02", 3000)
    assert set(v2["replicas"]) == {"r3", "r2"}  # written in r3, fetched by r2's open
    assert w.read(lambda v: v.get("/images/zk", GeoImage).latest) == 2
    assert_invariants(w.ctl)


def test_a_second_writer_is_refused(world: World) -> None:
    w = world
    ok(w.ctl, "open_image_write", {"image": "zk", "region": "r1", "session": "first"})
    t = run(w.ctl, "open_image_write", {"image": "zk", "region": "r2", "session": "second"})
    assert t.state is State.ABORTED
    assert (
        "second writer is refused" in str(t.error)
        and "first" in str(t.error)
        and "/images/zk" in str(t.error)
    )
    t = run(w.ctl, "close_image_write", {"image": "zk", "session": "second", "digest": "d", "size_mib": 1})
    assert t.state is State.ABORTED and "not open for writing by second" in str(t.error)
    ok(w.ctl, "abort_image_write", {"image": "zk", "session": "first"})  # nothing published
    assert w.read(lambda v: v.get("/images/zk", GeoImage).latest) == 1
    publish(w, "second", "sha256:03", region="r2")  # now it may write
    assert w.read(lambda v: v.get("/images/zk", GeoImage).latest) == 2
    assert_invariants(w.ctl)


def test_eager_policy_copies_on_publish_with_transfer_times(world: World) -> None:
    w = world
    ok(w.ctl, "create_image", {"name": "web", "region": "r1", "policy": "eager"})
    ok(w.ctl, "open_image_write", {"image": "web", "region": "r1", "session": "w"})
    t = ok(
        w.ctl, "close_image_write", {"image": "web", "session": "w", "digest": "sha256:0a", "size_mib": 800}
    )
    copies = {a.args["region"]: a.args["transfer_s"] for a in t.actions if a.action == "add_replica"}
    # r1 -> r2: 80 ms, 16 MiB window: 200 MiB/s; then r3 from its nearest replica, r2's (120 ms: 133 MiB/s,
    # sooner than r1's 200 ms at 80 MiB/s)
    assert copies == pytest.approx({"r2": 0.08 + 800 / 200.0, "r3": 0.12 + 800 / (16 / 0.12)})
    sources = {a.args["region"]: a.args["source"] for a in t.actions if a.action == "add_replica"}
    assert sources == {"r2": "/storage/r1/san-1/web-v1", "r3": "/storage/r2/san-1/web-v1"}
    for region in ("r1", "r2", "r3"):
        assert "web-v1" in san_images(w, region)
    assert_invariants(w.ctl)


def test_gc_collects_old_versions_never_one_in_use(world: World) -> None:
    w = world
    ok(w.ctl, "open_image", {"image": "zk", "region": "r2", "session": "reader"})  # holds v1
    publish(w, "w2", "sha256:02")
    publish(w, "w3", "sha256:03")
    ok(w.ctl, "gc_image", {"image": "zk"})
    names = [v["version"] for v in w.read(lambda v: versions_of(v, "zk"))]
    assert names == [1, 3]  # v2 collected; v1 is open; v3 is the latest
    assert "zk-v2" not in san_images(w, "r1") and "zk-v1" in san_images(w, "r2")
    ok(w.ctl, "close_image", {"image": "zk", "session": "reader"})
    ok(w.ctl, "gc_image", {"image": "zk"})
    assert [v["version"] for v in w.read(lambda v: versions_of(v, "zk"))] == [3]
    assert "zk-v1" not in san_images(w, "r1") + san_images(w, "r2")
    t = run(w.ctl, "gc_image", {"image": "zk", "keep": 0})
    assert t.state is State.ABORTED and "keep" in str(t.error)
    assert_invariants(w.ctl)


def test_a_version_backing_a_member_is_never_collected() -> None:
    ctl, sim = start()
    try:
        w = build(ctl, sim)  # members m1 (r1) and m2 (r2) run on volumes cloned from version 1
        publish(w, "w2", "sha256:02")
        publish(w, "w3", "sha256:03")
        ok(w.ctl, "gc_image", {"image": "zk"})
        rows = w.read(lambda v: versions_of(v, "zk"))
        assert [r["version"] for r in rows] == [1, 3]
        assert any("backs /storage/r1/san-1/vol-m1" in why for why in rows[0]["in_use"])
        # once no member needs it (both replaced by members on the latest version), it goes
        ok(w.ctl, "destroy_member", {"service": "zk", "vm": "m1"})
        ok(w.ctl, "destroy_member", {"service": "zk", "vm": "m2"})
        ok(w.ctl, "spawn_member", {"service": "zk", "name": "m4", "host": host_path("r3", 1)})
        ok(w.ctl, "gc_image", {"image": "zk"})
        assert [r["version"] for r in w.read(lambda v: versions_of(v, "zk"))] == [3]
        assert_invariants(w.ctl)
    finally:
        ctl.stop()
