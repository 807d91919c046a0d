"""The tests' name for the product's ZooKeeper launcher (``tropic.cluster.zk_ensemble``)."""

from tropic.cluster.zk_ensemble import (
    ZooKeeperEnsemble,
    ZooKeeperHarnessError,
    ZooKeeperInstall,
    find_zookeeper,
    four_letter,
    free_ports,
)

__all__ = [
    "ZooKeeperEnsemble",
    "ZooKeeperHarnessError",
    "ZooKeeperInstall",
    "find_zookeeper",
    "four_letter",
    "free_ports",
]
