"""One controller replica: stand by, lead when elected, step down when its session (or its store) says
it no longer leads, stand by again.

Taking over is :meth:`Controller.open` on the ZooKeeper store with the election's session: the store
bumps its epoch (deposing the previous leader for good) and rebuilds the model and every transaction
from the last snapshot and the log after it; queued transactions resume, in-flight ones are finished by
the workers (their reports wait in ZooKeeper). A leader whose ZooKeeper connection is down refuses new
work with :class:`~tropic.store.zkclient.ZooKeeperUnavailable` and resumes when it comes back; if its
session ends meanwhile, another replica leads and this one stands by again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import CancelledError, KazooException

from tropic.cluster.controller import ReplicatedController
from tropic.cluster.election import Election, LeaderInfo
from tropic.drivers.base import Driver
from tropic.errors import TropicError
from tropic.model import Model, project
from tropic.retry import RetryPolicy
from tropic.store.zk import ZooKeeperStore
from tropic.store.zkclient import ZooKeeperUnavailable, open_client, parse_zk_uri
from tropic.txn.remote import RemoteExecutor

log = logging.getLogger(__name__)

Listener = Callable[[ReplicatedController], None]

# A replica waits for its ensemble for as long as it runs: every attempt already waits connect_timeout
# for a quorum, so the pauses between attempts stay short.
CONNECT_RETRY = RetryPolicy(attempts=None, backoff_s=0.5, max_backoff_s=2.0, deadline_s=None)


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """``uri``: the ``zk://`` store; ``name``: this replica's name; ``url``: where its API answers (told
    to clients by standby replicas); ``session_timeout``: how long ZooKeeper waits before declaring a
    silent replica dead (the floor of the failover time)."""

    uri: str
    name: str
    url: str | None = None
    session_timeout: float = 3.0
    connect_timeout: float = 30.0


class Replica:
    """See the module docstring. :meth:`run` blocks until :meth:`stop`."""

    def __init__(
        self,
        config: ReplicaConfig,
        driver: Driver,
        *,
        initial: Callable[[], Model],
        on_lead: Listener | None = None,
        on_step_down: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.address = parse_zk_uri(config.uri)
        self.driver = driver
        self.initial = initial
        self.on_lead = on_lead
        self.on_step_down = on_step_down
        self.client: KazooClient | None = None
        self.controller: ReplicatedController | None = None
        self.terms = 0
        self.last_takeover_s: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._expired = threading.Event()  # the session ended (kazoo's LOST) during this term
        self._election: Election | None = None

    # --- lifecycle ---
    def run(self) -> None:
        client = self._connect()
        if client is None:
            return
        try:
            while not self._stop.is_set():
                self._stand_by_and_lead(client)
        finally:
            client.remove_listener(self._on_state)
            client.stop()
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        election = self._election
        if election is not None:
            election.cancel()

    def leader(self) -> LeaderInfo | None:
        election = self._election
        return None if election is None else election.leader()

    def describe_standby(self) -> str:
        who = self.leader()
        if who is None or who.name == self.config.name:
            return (
                f"controller {self.config.name} is not the leader (an election is under way); "
                "retry shortly or ask another controller"
            )
        where = f" at {who.url}" if who.url else ""
        return f"controller {self.config.name} is a standby; the leader is {who.name}{where}"

    # --- internals ---
    def _connect(self) -> KazooClient | None:
        """Connect to the ensemble, trying until it answers or :meth:`stop` (None then)."""

        def attempt() -> KazooClient | None:
            if self._stop.is_set():
                return None
            return open_client(
                self.address,
                connect_timeout=self.config.connect_timeout,
                session_timeout=self.config.session_timeout,
            )

        def tell(error: BaseException, pause: float) -> None:
            log.warning("%s; retrying in %.1f s", error, pause)

        # A stop ends the pause at once (the event's wait returns) and the next attempt sees it.
        client = CONNECT_RETRY.call(
            attempt, retry_on=(ZooKeeperUnavailable,), sleep=self._stop.wait, on_retry=tell
        )
        if client is not None:
            self.client = client
            self._connected.set()
            client.add_listener(self._on_state)
        return client

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._expired.set()
        if state == KazooState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        self._wake.set()

    def _session_changed(self, client: KazooClient, session: int | None) -> bool:
        """True once the session this term began with is over (a disconnection alone is not that:
        kazoo reports no session id while it reconnects)."""
        if self._expired.is_set():
            return True
        current = client.client_id
        return client.state == KazooState.CONNECTED and current is not None and current[0] != session

    def _stand_by_and_lead(self, client: KazooClient) -> None:
        election = Election(client, LeaderInfo(self.config.name, self.config.url))
        self._election = election
        try:
            node = election.campaign()
        except CancelledError:
            return
        except (KazooException, TropicError) as e:
            log.warning("election on %s failed (%s); campaigning again", self.address, e)
            self._stop.wait(0.5)
            return
        try:
            if not self._stop.is_set():
                self._lead(client, election, node)
        except TropicError as e:  # e.g. the quorum was lost while restoring: stand by again
            log.error("controller %s could not lead: %s", self.config.name, e.message)
            self._stop.wait(0.5)
        except Exception:  # a bug must not leave a replica that never campaigns again
            log.exception("controller %s could not lead", self.config.name)
            self._stop.wait(1.0)
        finally:
            election.resign()

    def _provisioned_initial(self) -> Model:
        model = self.initial()
        self.driver.bind(model)  # which backend drives which device, before provisioning them
        load = getattr(self.driver, "load", None)
        if callable(load):
            load(project(model))  # devices first: a crash before the store holds the model redoes both
        return model

    def _lead(self, client: KazooClient, election: Election, node: str) -> None:
        started = time.monotonic()
        self._expired.clear()
        session = client.client_id[0] if client.client_id else None
        store = ZooKeeperStore(
            self.address,
            client=client,
            name=self.config.name,
            physical_queue=True,
            timeout=self.config.connect_timeout,
        )
        store.bind_election(node)
        executor = RemoteExecutor(client)
        controller = ReplicatedController.open(
            store, self.driver, initial=self._provisioned_initial, executor=executor
        )
        assert isinstance(controller, ReplicatedController)
        controller.zookeeper_ok = self._connected.is_set

        def settled(txn: int) -> bool:
            t = controller.live_record(txn)  # a final record is no longer in memory: it is settled
            return t is None or t.settled

        executor.adopt(settled)
        controller.subscribe(executor.durable)
        controller.start()
        self.controller = controller
        self.terms += 1
        self.last_takeover_s = time.monotonic() - started
        log.warning(
            "controller %s leads (epoch %s): restored %d live transactions in %.2f s",
            self.config.name,
            store.epoch,
            len(controller.live()),
            self.last_takeover_s,
        )
        try:
            if self.on_lead is not None:
                self.on_lead(controller)
            while not self._stop.is_set():
                if self._session_changed(client, session) or election.node_gone:
                    log.warning("controller %s lost its ZooKeeper session: stepping down", self.config.name)
                    break
                if controller.fatal is not None:
                    log.warning("controller %s stops leading: %s", self.config.name, controller.fatal.message)
                    break
                self._wake.wait(0.1)
                self._wake.clear()
        finally:
            if self.on_step_down is not None:
                try:
                    self.on_step_down()
                except Exception:
                    log.exception("controller %s: stepping down the API failed", self.config.name)
            store.abdicate()  # the logical thread stops at its next commit; the successor resumes the rest
            if self._stop.is_set() and not self._connected.is_set():
                client.stop()  # a commit waiting for a lost quorum gives up (shutting down)
            controller.stop()
            self.controller = None
