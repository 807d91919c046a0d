"""The image catalog and the overlay in distributed mode live in ZooKeeper (the real three-server
ensemble of the fixtures): a version published by one controller is what an open sees after that
controller is gone and another has restored the model from the ensemble; a reader that opened before a
close keeps its version across the takeover, and the writer lock (one writer at a time) survives it too.
A member migrated on one controller keeps its address, leading to its new region, on the next."""

from __future__ import annotations

import pytest

from geo.helpers import World, build, ok, run, world_model
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.model.images import GeoImage, ImageVersion
from tropic.procedures.images import opened_version
from tropic.txn import Controller, State

zk = pytest.importorskip("tropic.store.zk", reason="kazoo is not installed")


def test_close_to_open_across_a_takeover_on_zookeeper(zk_uri: str) -> None:
    model = world_model()
    sim = SimDriver(seed=5)
    sim.load(project(model))
    a = Controller.open(zk.ZooKeeperStore(zk_uri, timeout=30), sim, initial=lambda: model, workers=2).start()
    try:
        build(a, sim, members=False)  # version 1 published in r1
        ok(a, "open_image", {"image": "zk", "region": "r2", "session": "early"})
        ok(a, "open_image_write", {"image": "zk", "region": "r3", "session": "w"})
    finally:
        a.stop()

    b = Controller.open(zk.ZooKeeperStore(zk_uri, timeout=30), sim, workers=2).start()
    try:
        # the catalog came back from the ensemble: version 1, its reader, and the writer's lock
        img = b.call(lambda: b.model.reader().get("/images/zk", GeoImage).snapshot())
        assert (img["latest"], img["writer"], img["writer_region"]) == (1, "w", "r3")
        t = run(b, "open_image_write", {"image": "zk", "region": "r1", "session": "other"})
        assert t.state is State.ABORTED and "second writer is refused" in str(t.error)
        ok(b, "close_image_write", {"image": "zk", "session": "w", "digest": "sha256:02", "size_mib": 512})
    finally:
        b.stop()

    c = Controller.open(zk.ZooKeeperStore(zk_uri, timeout=30), sim, workers=2).start()
    try:
        ok(c, "open_image", {"image": "zk", "region": "r1", "session": "late"})

        def pinned(session: str) -> tuple[int, str]:
            def read() -> tuple[int, str]:
                view = c.model.reader()
                v = opened_version(view, "zk", session)
                assert v is not None
                got = view.get(v.path, ImageVersion)
                return got.version, got.digest

            return c.call(read)

        assert pinned("late") == (2, "sha256:02")  # opened after the close: the new version
        assert pinned("early") == (1, "sha256:01")  # opened before it: keeps the old one
        assert c.check()["consistent"]
    finally:
        c.stop()


def test_a_member_migrated_on_zookeeper_keeps_its_address_across_a_takeover(zk_uri: str) -> None:
    model = world_model()
    sim = SimDriver(seed=6)
    sim.load(project(model))
    a = Controller.open(zk.ZooKeeperStore(zk_uri, timeout=30), sim, initial=lambda: model, workers=2).start()
    try:
        w = build(a, sim)
        before = w.addresses()
        ok(a, "migrate_member", {"service": "zk", "member": "m1", "region": "r3"})
        moved = w.addresses()
    finally:
        a.stop()
    assert {ip for ip, _ in moved.values()} == {ip for ip, _ in before.values()}
    b = Controller.open(zk.ZooKeeperStore(zk_uri, timeout=30), sim, workers=2).start()
    try:
        w = World(b, sim)
        assert w.addresses() == moved  # restored from the ensemble: the same addresses, leading to r3
        assert any(vm.startswith("/compute/r3/") and vm.endswith("/m1") for _, vm in moved.values())
        assert dict(sim.overlay) == {path: vm for path, (_, vm) in moved.items()}
        ok(b, "migrate_member", {"service": "zk", "member": "m1", "region": "r1"})  # and it moves on
        assert b.check()["consistent"]
    finally:
        b.stop()
