"""Property: random sequences of image opens, closes, writes, member spawns and destroys, and garbage
collections never collect a version in use (open by a session, or backing a VM's volume), and every open
sees exactly the version of the last close before it (close-to-open), while a second writer is refused.

Each operation is simulated on the model (as the controller does), applied when it is allowed, and its
device steps replayed on a sim, so the devices are checked too: no image a volume was cloned from is ever
gone from its storage host."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.helpers import small_dc
from geo.helpers import REGIONS, RTT
from tropic.drivers import SimDriver
from tropic.drivers.base import Step
from tropic.model import MODEL_ONLY_ACTIONS, VM, Model, View, project
from tropic.model.generate import host_path
from tropic.model.images import GeoImage, ImageVersion
from tropic.procedures import REGISTRY, Registry
from tropic.procedures.images import ensure_replica, opened_version
from tropic.procedures.standard import destroy_vm, spawn_vm
from tropic.txn.simulate import simulate


def spawn_latest(view: View, *, name: str, region: str) -> None:
    """A VM on the latest version's replica in ``region`` (fetched there if missing)."""
    replica = ensure_replica(view, "/images/zk", region)
    spawn_vm(view, name=name, image=replica, vcpus=1, memory_mib=256, host=host_path(region, 1))


EXTRA = Registry.of([spawn_latest, destroy_vm])


class Harness:
    def __init__(self) -> None:
        self.model: Model = small_dc(hosts=1, memory_mib=65536, regions=REGIONS)
        self.sim = SimDriver()
        self.sim.load(project(self.model))
        self.txn = 0

    def run(self, procedure: str, **args: Any) -> bool:
        proc = EXTRA.procedures.get(procedure) or REGISTRY.get(procedure)
        s = simulate(self.model, proc, proc.validate(args))
        if not s.ok:
            return False
        self.txn += 1
        self.model.apply(s.view)
        for i, a in enumerate(s.actions):
            if a.action not in MODEL_ONLY_ACTIONS:
                self.sim.execute(Step(self.txn, i, a.path, a.action, a.args))
        return True

    def read(self, fn: Any) -> Any:
        return fn(self.model.reader())


op = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(REGIONS), st.integers(0, 3)),
    st.tuples(st.just("close"), st.just(""), st.integers(0, 3)),
    st.tuples(st.just("write"), st.sampled_from(REGIONS), st.integers(0, 1)),
    st.tuples(st.just("publish"), st.just(""), st.integers(0, 1)),
    st.tuples(st.just("abort"), st.just(""), st.integers(0, 1)),
    st.tuples(st.just("spawn"), st.sampled_from(REGIONS), st.integers(0, 2)),
    st.tuples(st.just("destroy"), st.just(""), st.integers(0, 2)),
    st.tuples(st.just("gc"), st.just(""), st.integers(1, 2)),
)


@settings(max_examples=200)
@given(st.lists(op, min_size=1, max_size=30))
def test_random_sequences_keep_close_to_open_and_never_collect_in_use(
    ops: list[tuple[str, str, int]],
) -> None:
    h = Harness()
    assert h.run("set_links", rtt_json=json.dumps({"data": RTT}))
    assert h.run("create_image", name="zk", region="r1")
    assert h.run("open_image_write", image="zk", region="r1", session="w-init")
    assert h.run("close_image_write", image="zk", session="w-init", digest="d1", size_mib=100)
    latest = 1  # the version of the last close
    readers: dict[str, int] = {}  # session -> the version it opened
    writer: str | None = None
    vms: dict[str, str] = {}  # VM path -> the replica it was cloned from
    for kind, region, n in ops:
        if kind == "open":
            s = f"r-{n}"
            done = h.run("open_image", image="zk", region=region, session=s)
            assert done == (s not in readers)
            if done:
                readers[s] = latest
        elif kind == "close":
            s = f"r-{n}"
            assert h.run("close_image", image="zk", session=s) == (s in readers)
            readers.pop(s, None)
        elif kind == "write":
            s = f"w-{n}"
            done = h.run("open_image_write", image="zk", region=region, session=s)
            assert done == (writer is None)  # a second writer is refused
            if done:
                writer = s
        elif kind in ("publish", "abort"):
            s = f"w-{n}"
            if kind == "publish":
                done = h.run("close_image_write", image="zk", session=s, digest=f"d{h.txn}", size_mib=100)
            else:
                done = h.run("abort_image_write", image="zk", session=s)
            assert done == (writer == s)
            if done and kind == "publish":
                latest = h.read(lambda v: v.get("/images/zk", GeoImage).latest)
            if done:
                writer = None
        elif kind == "spawn":
            path = f"{host_path(region, 1)}/vm-{n}"
            if h.run("spawn_latest", name=f"vm-{n}", region=region):
                vms[path] = h.read(lambda v, p=path: v.get(p, VM).image)
        elif kind == "destroy":
            path = next((p for p in sorted(vms) if p.endswith(f"/vm-{n}")), "")
            if path:
                assert h.run("destroy_vm", vm=path)
                vms.pop(path)
        else:
            assert h.run("gc_image", image="zk", keep=n)

        # close-to-open: every open session holds the version that was the latest when it opened
        for s, version in readers.items():
            got = h.read(lambda v, s=s: opened_version(v, "zk", s))
            assert got is not None and h.read(lambda v, p=got.path: v.get(p, ImageVersion).version) == version
        # nothing in use was collected: open versions exist (above); VMs' replicas exist, model and devices
        images = {f"{san}/{i}" for san, spec in h.sim.inventory()["storage"].items() for i in spec["images"]}
        for replica in vms.values():
            assert h.model.reader().exists(replica) and replica in images
        assert h.read(lambda v: v.get("/images/zk", GeoImage).latest) == latest
    assert project(h.model) == h.sim.inventory()
