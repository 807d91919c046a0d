"""Highly available applications (TRIPOD): a job runs as replicas that agree on every request through
ZooKeeper's totally ordered writes (Zab), so that losing a replica costs no availability and no
acknowledged work. ``contract`` fixes what the parts share:

* ``log``: the sequenced request log in ZooKeeper, snapshots and truncation;
* ``replica``: the wrapper that makes an unmodified stdin/stdout program a replica (``program``: that
  program as a child process; ``codec``: the contract's records as JSON);
* ``client``: the client library (discovery, timeouts, failover, retries with the same request id);
* ``linearizability``: the Wing-Gong/Lowe checker (as in porcupine), per-key partitioned;
* ``bench``: ``tropic ha bench``.

The job resource, its placement in distinct failure domains, the transactions that start and replace
replicas and the self-healing reconciler live with the model, procedures and reconciler.
"""
