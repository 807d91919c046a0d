"""Replicated jobs as a part of the service: the healing loop of the controller that leads, and where the
jobs' request logs live (``--ha-zk``; in distributed mode, the controllers' own ensemble under a chroot
of the jobs' own, next to the store's), and the inventory's jobs started when it is served."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tropic.errors import ConfigError
from tropic.inventory import Inventory, tree_of_model
from tropic.inventory.diff import jobs_diff
from tropic.jobs.healer import JobHealer
from tropic.jobs.observe import JobZooKeeper
from tropic.records.states import State
from tropic.txn import Controller

log = logging.getLogger(__name__)
INVENTORY = "inventory"  # the submitter of the transactions serving an inventory makes


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


@dataclass(frozen=True, slots=True)
class JobStart:
    """What serving an inventory did for one of its jobs: the ``create_job`` transaction and its end."""

    job: str
    txn: int
    state: str
    error: str = ""

    def note(self) -> str:
        done = f"/jobs/{self.job}: transaction {self.txn} {self.state}"
        return done if not self.error else f"{done}: {self.error}"


def start_inventory_jobs(
    controller: Controller, inv: Inventory, zk_uri: str | None, *, timeout: float = 300.0
) -> list[JobStart]:
    """Create the inventory's jobs the model lacks, each by a ``create_job`` transaction as ``tropic
    inventory apply`` does (in file order, one at a time, the jobs' request logs in ``zk_uri``), and
    say how each ended. A job the model already has is left alone (a restart starts nothing twice; a
    job declared differently is listed by ``tropic inventory plan``, not changed). One that does not
    commit (no room in distinct failure domains, say) is logged with its reason; the others still
    start. Jobs to start and no ZooKeeper for their logs: :class:`~tropic.errors.ConfigError`."""
    tree = controller.call(lambda: tree_of_model(controller.model))
    todo = [ch for ch in jobs_diff(inv, tree) if ch.op == "+" and ch.applicable]
    if todo and not zk_uri:
        names = ", ".join(ch.path for ch in todo)
        raise ConfigError(
            f"the inventory declares job(s) {names}, and their request logs need a ZooKeeper: serve with "
            "--ha-zk zk://HOST:PORT/CHROOT (or a zk:// store, whose ensemble then holds them)"
        )
    out: list[JobStart] = []
    for change in todo:
        (call,) = change.calls
        t = controller.submit(call.procedure, {**call.args, "zk": zk_uri}, submitter=INVENTORY)
        t = controller.wait(t, timeout)
        err = t.error or {}
        why = str(err.get("message", err)) if isinstance(err, dict) else str(err)
        start = JobStart(
            str(call.args["name"]), t.id, t.state.value, "" if t.state is State.COMMITTED else why
        )
        if start.error:
            log.error("inventory job not started: %s", start.note())
        out.append(start)
    return out
