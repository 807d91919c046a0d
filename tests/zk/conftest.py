"""The tests that need a real ZooKeeper use the session's 3-node loopback ensemble: the ``zk_ensemble``,
``zk_uri`` and ``zk_client`` fixtures live in tests/conftest.py (shared with tests/distributed)."""
