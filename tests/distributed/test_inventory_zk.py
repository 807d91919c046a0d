"""``tropic serve --inventory`` on a zk:// store: the first leader initialises the empty store with the
file's fleet and provisions the devices; a VM spawned there commits on them; a later start with a
different file serves the store as it is and the leader says that it differs."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.helpers import until
from distributed.cluster import TOKEN, Cluster, FailoverClient, verify, wait_all_final
from tropic.inventory import diff, load, tree_of_model
from tropic.model import STANDARD
from tropic.store.zk import ZooKeeperStore

SIM = Path(__file__).resolve().parents[2] / "examples" / "inventory-sim.toml"


def stored_tree(uri: str) -> dict[str, tuple[str, dict[str, object]]]:
    store = ZooKeeperStore(uri, read_only=True)
    try:
        restored = store.restore(STANDARD)
    finally:
        store.close()
    assert restored is not None
    return tree_of_model(restored.model)


def test_the_first_leader_starts_the_store_from_the_file(zk_uri: str, tmp_path: Path) -> None:
    cluster = Cluster(
        zk_uri, tmp_path / "c", controllers=1, workers=1, serve_options=["--inventory", str(SIM)]
    )
    cluster.start()
    fc = FailoverClient(cluster.urls)
    try:
        r = httpx.get(
            f"{cluster.urls[0]}/v1/resources/compute",
            params={"depth": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert sorted(c["name"] for c in r.json()["children"]) == ["eu-west", "us-east"]
        spawn = {
            "host": "/compute/eu-west/kvm-1",
            "name": "app-1",
            "image": "/storage/eu-west/san-1/img-ubuntu",
            "vcpus": 1,
            "memory_mib": 512,
        }
        fc.submit("spawn_vm", spawn, key="inv-1")
        txns = wait_all_final(zk_uri, 1, 120)
        assert [t.state.value for t in txns] == ["COMMITTED"], [t.error for t in txns]
        report = verify(zk_uri, cluster.devices)
        assert report["consistent"] and report["violations"] == [], report
        assert [c for c in diff(load(SIM), stored_tree(zk_uri)) if c.kind != "vm"] == []
    except BaseException:
        print(cluster.logs(20))
        raise
    finally:
        fc.close()
        cluster.stop()

    changed = tmp_path / "changed.toml"
    changed.write_text(SIM.read_text().replace("cpus = 8", "cpus = 4"))
    again = Cluster(
        zk_uri, tmp_path / "c", controllers=1, workers=0, serve_options=["--inventory", str(changed)]
    )
    again.start()
    try:
        log = again.procs["c0"].log
        until(
            lambda: "differs from the file" in log.read_text(errors="replace"),
            "the leader's warning",
            timeout=60,
        )
        assert stored_tree(zk_uri)["/compute/eu-west/kvm-1"][1]["cpus"] == 8  # served as stored
    finally:
        again.stop()
