"""Physical execution in worker processes, through a physical queue in ZooKeeper (distributed mode).

The leader's store queues every batch of started transactions; worker processes
(:mod:`~tropic.txn.remote.worker`) claim the entries, replay their transactions on their own drivers and
report back; on the leader, :class:`RemoteExecutor` (:mod:`~tropic.txn.remote.executor`) collects the
reports for the controller. What travels between them is in :mod:`~tropic.txn.remote.protocol`.
"""

from tropic.txn.remote.executor import RemoteExecutor
from tropic.txn.remote.protocol import apply_report
from tropic.txn.remote.worker import Worker, WorkerStats

__all__ = ["RemoteExecutor", "Worker", "WorkerStats", "apply_report"]
