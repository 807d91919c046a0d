"""Replicated jobs as a part of the service: the healing loop of the controller that leads, and where the
jobs' request logs live (``--ha-zk``; in distributed mode, the controllers' own ensemble under a chroot
of the jobs' own, next to the store's)."""

from __future__ import annotations

from typing import Any

from tropic.jobs.healer import JobHealer
from tropic.jobs.observe import JobZooKeeper
from tropic.txn import Controller


def jobs_zk_for(store_uri: str) -> str:
    """The jobs' ZooKeeper for a ``zk://`` store: the same servers, chroot ``<store chroot>-ha``
    (``/tropic-ha`` for a store at the root)."""
    from tropic.store.zkclient import parse_zk_uri  # kazoo loads only when ZooKeeper is used

    address = parse_zk_uri(store_uri)
    chroot = "/tropic-ha" if address.chroot == "/" else address.chroot.rstrip("/") + "-ha"
    return f"zk://{address.connect_string}{chroot}"


def heal_interval(reconcile_interval: float) -> float:
    """Seconds between healing passes: at most 1 s (a replacement serves within any reconcile interval),
    besides the passes ZooKeeper's watches trigger at once."""
    return min(reconcile_interval, 1.0) if reconcile_interval > 0 else 1.0


def start_job_healer(controller: Controller, app: Any, *, zk_uri: str | None, interval: float) -> JobHealer:
    """Start healing ``controller``'s jobs, publish its events on ``app``'s stream, and show both to the
    API (``app.state.job_healer``, ``app.state.jobs_zk``). A ZooKeeper that does not answer is an error
    now (:class:`~tropic.store.zkclient.ZooKeeperUnavailable` naming it), not at the first job."""
    zk = JobZooKeeper(zk_uri) if zk_uri else None
    events = getattr(app.state, "events", None)

    def publish(ev: dict[str, Any]) -> None:
        if events is not None:
            events.publish("job", ev)

    healer = JobHealer(controller, zk=zk, interval=interval, on_event=publish).start()
    app.state.job_healer = healer
    app.state.jobs_zk = zk_uri
    return healer
