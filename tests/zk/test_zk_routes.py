"""The launcher's peer routes: server ``i`` may dial peer ``j`` through a relay (the delay proxy of an
emulated wide area) while still listening on its own ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tropic.cluster.zk_ensemble import ZooKeeperEnsemble, find_zookeeper

pytestmark = pytest.mark.skipif(
    find_zookeeper() is None, reason="ZooKeeper is not installed: run scripts/install-zookeeper.sh"
)


def _servers(ensemble: ZooKeeperEnsemble, index: int) -> dict[str, str]:
    lines = ensemble.servers[index].config.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("server."))


def test_each_server_names_its_routes_and_keeps_its_own_ports(tmp_path: Path) -> None:
    ensemble = ZooKeeperEnsemble(tmp_path, size=3)
    own = [ensemble.peer_ports(i) for i in range(3)]
    ensemble.route_peers({0: {1: (40001, 40002)}, 2: {0: (40003, 40004), 1: (40005, 40006)}})
    zero, one, two = (_servers(ensemble, i) for i in range(3))
    assert zero["server.1"] == f"127.0.0.1:{own[0][0]}:{own[0][1]}"  # its own entry: where it listens
    assert zero["server.2"] == "127.0.0.1:40001:40002"
    assert zero["server.3"] == f"127.0.0.1:{own[2][0]}:{own[2][1]}"  # not routed: direct
    assert one == {f"server.{i + 1}": f"127.0.0.1:{q}:{e}" for i, (q, e) in enumerate(own)}
    assert two["server.1"] == "127.0.0.1:40003:40004"
    assert two["server.2"] == "127.0.0.1:40005:40006"
    with pytest.raises(ValueError, match="bad server index"):
        ensemble.route_peers({0: {0: (1, 2)}})
    ensemble.close()
