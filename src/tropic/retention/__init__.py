"""History with a retention policy: final transaction records older or more numerous than the policy
allows are archived (compressed JSON lines, written atomically) and then removed from the store.

:mod:`~tropic.retention.policy` parses ``--retain`` (e.g. ``30d,10M``); :mod:`~tropic.retention.archive`
writes and reads the archive folder; :mod:`~tropic.retention.sqlite` runs a retention pass on the embedded
store, :mod:`~tropic.retention.zk` one on the ZooKeeper store (imported on demand: it needs kazoo).
"""

from tropic.retention.policy import Retention
from tropic.retention.runner import RetentionThread
from tropic.retention.sqlite import PassResult, retain
from tropic.store.archive import Archive

__all__ = ["Archive", "PassResult", "Retention", "RetentionThread", "retain"]
