"""The one place the service is put together, for the embedded and the ZooKeeper modes alike.

:func:`build_service` opens everything a ``tropic serve`` process runs (store, driver, controller,
reconciler, REST API) from a :class:`ServiceConfig`, and fails with a clear error before anything is
served; :meth:`Service.run` serves until SIGTERM or SIGINT, then stops in order.

* **embedded** (``sqlite://`` or ``memory://``): one controller on the store, the reconciler's periodic
  passes, the API;
* **replicated** (``zk://``): a controller replica (:mod:`tropic.cluster`) that serves the API, and runs
  the reconciler, only while it leads; a standby answers 503 naming the leader.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from tropic.api.audit import AuditLog
from tropic.api.auth import TokenStore
from tropic.api.defaults import DEFAULT_HOST, DEFAULT_PORT
from tropic.api.idempotency import DEFAULT_TTL
from tropic.api.server import HttpLimits
from tropic.api.store_keys import keys_for
from tropic.drivers.base import Driver
from tropic.errors import ConfigError, TropicError
from tropic.model import Model
from tropic.owner import Holder, in_use, read_holder
from tropic.reconcile import Policies, Reconciler
from tropic.retention.policy import Retention
from tropic.retention.runner import RetentionThread
from tropic.service.autopilot import AutopilotSettings, build_coordinator
from tropic.service.embedded import DEFAULT_STORE, Embedded, default_datacenter, open_embedded
from tropic.service.jobs import heal_interval, jobs_zk_for, start_inventory_jobs, start_job_healer
from tropic.store.archive import Archive
from tropic.store.registry import StoreURI, parse_store_uri
from tropic.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    import uvicorn

    from tropic.autopilot.coordinator import Coordinator
    from tropic.cluster import Replica
    from tropic.inventory import Inventory
    from tropic.jobs.healer import JobHealer
    from tropic.model import Model

log = logging.getLogger("tropic.service")


@dataclass(slots=True)
class ServiceConfig:
    """Everything ``tropic serve`` takes. ``name`` and ``session_timeout`` matter only with ``zk://``."""

    tokens: TokenStore
    audit: AuditLog
    store: str = DEFAULT_STORE
    driver: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "info"
    reconcile_interval: float = 30.0  # 0: drift is detected only on demand
    policies: Policies = field(default_factory=lambda: Policies.parse("*=report"))
    name: str | None = None
    session_timeout: float = 3.0
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    retain: Retention | None = None  # retention of final records; None: keep them all
    archive: Path | None = None  # where retention archives them (default: <store>.archive; zk: required)
    retain_interval: float = 300.0  # seconds between retention passes
    idempotency_ttl: float = DEFAULT_TTL  # seconds an idempotency key is remembered from its first use
    inventory: Inventory | None = None  # what a fresh store starts with (default: the generated datacenter)
    autopilot: AutopilotSettings = field(default_factory=AutopilotSettings)  # --autopilot...: the loop
    ha_zk: str | None = None  # --ha-zk: replicated jobs' request logs (zk:// store: its own ensemble)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn's options: the listener, and the connection timeouts and access-log redaction every
        API server has (:func:`tropic.api.server.server_options`)."""
        from tropic.api.server import server_options

        tls = {"ssl_certfile": str(self.tls_cert), "ssl_keyfile": str(self.tls_key)} if self.tls_cert else {}
        return {
            **server_options(self.http_limits),
            "host": self.host,
            "port": self.port,
            "log_level": self.log_level.lower(),
            "timeout_graceful_shutdown": 5,
            **tls,
        }


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Refuse a half-given or unloadable certificate before anything is served."""
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        return
    for what, path in (("certificate", cert), ("private key", key)):
        if not path.is_file():
            raise ConfigError(f"TLS {what} {path} does not exist or is not a file", path=str(path))
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"cannot load TLS certificate {cert} with key {key}: {e}", path=str(cert)) from None


def bind_listener(config: ServiceConfig, spec: StoreURI) -> socket.socket:
    """Bind the API's address before anything else is opened, so a port already taken is one clear error
    (naming the store's owner when that is a server on the same store) and no store is touched. Port 0
    takes a free port, written back into ``config``."""
    where = f"{config.host}:{config.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"cannot listen on {where}: unknown address ({e})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            if spec.path is not None and spec.path.exists() and read_holder(spec.path, wait_s=0):
                raise in_use(spec.path, "store") from None  # the likelier mistake: names the holder
            raise ConfigError(
                f"cannot listen on {where}: the address is already in use (another server?); "
                "choose another --port or stop that server"
            ) from None
        raise ConfigError(f"cannot listen on {where}: {e.strerror or e}") from None
    config.port = sock.getsockname()[1]
    return sock


def make_server(config: uvicorn.Config, *, on_exit: Callable[[], None]) -> uvicorn.Server:
    """uvicorn's server, calling ``on_exit`` on SIGTERM/SIGINT, which end the service with status 0."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Like uvicorn's, minus re-raising the signal afterwards: that would kill the process before
            # the controller is stopped cleanly. SIGTERM/SIGINT end the service with status 0.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


class Service(ABC):
    """A built service, ready to serve: :meth:`describe` says what it is, :meth:`run` serves."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.sockets: list[socket.socket] = []  # the bound listener, once build_service has bound it

    @abstractmethod
    def describe(self) -> list[str]:
        """Lines for the start-up banner (never a secret)."""

    @abstractmethod
    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop everything in order."""

    def autopilot_note(self) -> str:
        a = self.config.autopilot
        if not a.policies:
            return "off"
        dry = ", dry run" if a.dry_run else ""
        return f"{a.policies} every {a.interval:g} s{dry}"

    def drift_note(self) -> str:
        c = self.config
        if c.reconcile_interval <= 0:
            return "on demand"
        return f"every {c.reconcile_interval:g} s, policy {c.policies}"


class EmbeddedService(Service):
    """One controller on an embedded store, with periodic drift detection and the API."""

    def __init__(self, config: ServiceConfig, spec: StoreURI) -> None:
        super().__init__(config)
        from tropic.api.app import create_app

        # The store names this server (and where its API is) to any process it refuses.
        holder = Holder.current(command="tropic serve", url=config.url)
        self.retention: RetentionThread | None = None
        self.autopilot: Coordinator | None = None
        if config.retain is not None:
            if spec.path is None:
                raise ConfigError(f"--retain needs an embedded sqlite:// store, not {config.store}")
            archive = Archive(config.archive or spec.path.with_name(spec.path.name + ".archive"))
            archive.check()  # an unwritable folder is an error now, not at the first pass hours later
        inv = config.inventory
        if inv is not None and inv.fleet.jobs and not config.ha_zk:  # before anything is opened
            raise inv.error(
                [(("jobs", 0), "jobs need a ZooKeeper for their request logs: serve with --ha-zk")]
            )
        seed = None if inv is None else _seed(inv)
        self.embedded: Embedded = open_embedded(config.store, config.driver, holder=holder, seed=seed)
        try:
            if inv is not None and not self.embedded.created:
                refuse_mismatch(inv, self.embedded.controller.model, self.embedded.store.uri)
            if config.retain is not None:
                store = self.embedded.store
                assert isinstance(store, SQLiteStore)
                store.archive = archive
                self.retention = RetentionThread(
                    store, archive, config.retain, interval=config.retain_interval
                ).start()
            self.controller = self.embedded.controller.start()
            self.reconciler = Reconciler(
                self.controller, interval=config.reconcile_interval or 30.0, policies=config.policies
            )
            if config.reconcile_interval > 0:
                self.reconciler.start()
            self.app = create_app(
                self.controller,
                config.tokens,
                config.audit,
                idempotency=keys_for(self.embedded.store, config.idempotency_ttl),
                reconciler=self.reconciler,
            )
            self.autopilot = build_coordinator(
                self.controller, config.autopilot, key_ttl=config.idempotency_ttl
            )
            self.app.state.autopilot = self.autopilot
            if self.autopilot is not None:
                self.autopilot.start()
            self.job_healer = start_job_healer(
                self.controller,
                self.app,
                zk_uri=config.ha_zk,
                interval=heal_interval(config.reconcile_interval),
            )
            self.jobs_started = (
                [] if inv is None else start_inventory_jobs(self.controller, inv, config.ha_zk)
            )
        except BaseException:
            if self.autopilot is not None:
                self.autopilot.stop()
            if self.retention is not None:
                self.retention.stop()
            self.embedded.close()
            raise

    def describe(self) -> list[str]:
        out = [
            f"tropic serving on {self.config.url}  (dashboard /, API /v1, OpenAPI /openapi.json)",
            f"  store: {self.embedded.store.uri}",
            f"  drift detection: {self.drift_note()}",
            f"  autopilot: {self.autopilot_note()}",
        ]
        router = self.embedded.router
        kinds = sorted({router.default_kind, *router.devices.values()})
        out.append(f"  devices: {', '.join(kinds)} (default {router.default_kind})")
        out += [f"  capacity: {p}" for p in router.capacity_problems]
        out += [f"  inventory job {j.note()}" for j in self.jobs_started]
        if self.retention is not None:
            p = self.retention.policy
            out.append(
                f"  retention: final records kept {p.max_age_s or 'any'} s / {p.max_count or 'any'} records, "
                f"then archived to {self.retention.archive.folder}"
            )
        return out

    def run(self) -> None:
        import uvicorn

        events = self.app.state.events
        config = uvicorn.Config(self.app, **self.config.uvicorn_options())
        try:
            # End the event streams on exit, or open dashboards would hold the shutdown.
            make_server(config, on_exit=events.close).run(sockets=self.sockets or None)
        finally:
            self.job_healer.stop()
            if self.autopilot is not None:
                self.autopilot.stop()
            self.reconciler.stop()
            if self.retention is not None:
                self.retention.stop()
            self.embedded.close()
            self.config.audit.close()


class ReplicatedService(Service):
    """A controller replica on a ZooKeeper store: it serves the API and runs the reconciler only while
    it leads (a standby answers 503 naming the leader); SIGTERM steps down so a standby takes over."""

    def __init__(self, config: ServiceConfig, spec: StoreURI) -> None:
        super().__init__(config)
        import socket

        from tropic.cluster import LeaderGate, Replica, ReplicaConfig

        self.store_uri = spec.uri
        self.name = config.name or f"{socket.gethostname()}:{config.port}"
        self.devices = open_distributed_driver(config.driver)
        self._reconciler: Reconciler | None = None
        self._retention: RetentionThread | None = None
        self._autopilot: Coordinator | None = None
        self._job_healer: JobHealer | None = None
        self.archive: Archive | None = None
        if config.retain is not None:
            if config.archive is None:
                raise ConfigError(
                    "--retain on a zk:// store needs --archive FOLDER (the same for every controller, "
                    "e.g. on shared storage: whichever leads archives there)"
                )
            self.archive = Archive(config.archive)
            self.archive.check()  # an unwritable folder is an error now, not at the first pass
        self._lock = threading.Lock()
        inv = config.inventory
        initial: Callable[[], Model] = default_datacenter
        if inv is not None:
            seed = _seed(inv)
            initial = lambda: seed(self.devices)  # noqa: E731 - called by whichever term finds the store empty
        self.replica: Replica = Replica(
            ReplicaConfig(spec.uri, self.name, config.url, session_timeout=config.session_timeout),
            self.devices,
            initial=initial,
            on_lead=self._lead,
            on_step_down=self._step_down,
        )
        self.gate = LeaderGate(self.replica.describe_standby)

    def _lead(self, controller: Any) -> None:
        from tropic.api.app import create_app
        from tropic.cluster import DurableKeys
        from tropic.store.zk import ZooKeeperStore

        assert isinstance(controller.store, ZooKeeperStore)
        c = self.config
        if c.inventory is not None:
            warn_mismatch(c.inventory, controller.model)
        reconciler = Reconciler(controller, interval=c.reconcile_interval or 30.0, policies=c.policies)
        retention = None
        if c.retain is not None and self.archive is not None:
            # Runs while this controller leads; its removals go through this term's store (fenced).
            controller.store.archive = self.archive
            retention = RetentionThread(controller.store, self.archive, c.retain, interval=c.retain_interval)
        with self._lock:
            self._reconciler = reconciler
            self._retention = retention
        if c.reconcile_interval > 0:
            reconciler.start()
        if retention is not None:
            retention.start()
        app = create_app(
            controller,
            c.tokens,
            c.audit,
            idempotency=DurableKeys(controller.store, ttl=c.idempotency_ttl),
            reconciler=reconciler,
        )
        # resumes the last term's unfinished pass
        autopilot = build_coordinator(controller, c.autopilot, key_ttl=c.idempotency_ttl)
        app.state.autopilot = autopilot
        with self._lock:
            self._autopilot = autopilot
        if autopilot is not None:
            autopilot.start()
        healer = start_job_healer(
            controller,
            app,
            zk_uri=c.ha_zk or jobs_zk_for(self.store_uri),
            interval=heal_interval(c.reconcile_interval),
        )
        with self._lock:
            self._job_healer = healer
        self.gate.lead(app)
        if c.inventory is not None:  # each term starts the jobs the model lacks (a later term: none left)
            zk = c.ha_zk or jobs_zk_for(self.store_uri)
            threading.Thread(  # not on the replica's thread: the steps wait for the workers
                target=self._start_jobs, args=(controller, c.inventory, zk), name="tropic-jobs", daemon=True
            ).start()

    def _start_jobs(self, controller: Any, inv: Inventory, zk: str) -> None:
        try:
            start_inventory_jobs(controller, inv, zk)
        except (TropicError, TimeoutError) as e:  # stepped down meanwhile: the next term starts them
            log.error("inventory jobs not started: %s", e)

    def _step_down(self) -> None:
        self.gate.step_down()
        with self._lock:
            reconciler, self._reconciler = self._reconciler, None
            retention, self._retention = self._retention, None
            autopilot, self._autopilot = self._autopilot, None
            healer, self._job_healer = self._job_healer, None
        if healer is not None:
            healer.stop()
        if autopilot is not None:
            autopilot.stop()
        if reconciler is not None:
            reconciler.stop()
        if retention is not None:
            retention.stop()

    @property
    def reconciler(self) -> Reconciler | None:
        """The reconciler of the current term (None while standing by)."""
        return self._reconciler

    @property
    def autopilot(self) -> Coordinator | None:
        """The autopilot of the current term (None while standing by, or without --autopilot)."""
        return self._autopilot

    @property
    def retention(self) -> RetentionThread | None:
        """The retention passes of the current term (None while standing by, or without --retain)."""
        return self._retention

    def describe(self) -> list[str]:
        out = [
            f"tropic controller replica {self.name} on {self.config.url} (store {self.store_uri}): "
            "the API answers while it leads",
            f"  drift detection while leading: {self.drift_note()}",
            f"  autopilot while leading: {self.autopilot_note()}",
        ]
        p = self.config.retain
        if p is not None and self.archive is not None:
            out.append(
                f"  retention while leading: final records kept {p.max_age_s or 'any'} s / "
                f"{p.max_count or 'any'} records, then archived to {self.archive.folder}"
            )
        return out

    def run(self) -> None:
        import uvicorn

        runner = threading.Thread(target=self._run_replica, name="tropic-replica", daemon=True)
        config = uvicorn.Config(self.gate, **self.config.uvicorn_options())
        server = make_server(config, on_exit=self.replica.stop)
        runner.start()
        try:
            server.run(sockets=self.sockets or None)
        finally:
            self.replica.stop()
            runner.join(60)
            self.devices.close()
            self.config.audit.close()

    def _run_replica(self) -> None:
        try:
            self.replica.run()
        except TropicError as e:
            log.error("replica stopped: %s", e.message)
        except Exception:
            log.exception("replica stopped")


def _seed(inv: Inventory) -> Callable[[Driver], Model]:
    from tropic.inventory.seed import initial_model

    return lambda driver: initial_model(inv, driver)


def refuse_mismatch(inv: Inventory, model: Model, store: str) -> None:
    """A store that already holds a model is served with ``--inventory`` only when the model matches
    the file (VMs aside); otherwise the file's changes go through ``tropic inventory apply``."""
    from tropic.inventory.seed import mismatches

    changes = mismatches(inv, model)
    if changes:
        first = changes[0]
        raise ConfigError(
            f"{inv.file}: store {store} already holds a model, which differs from the file in "
            f"{len(changes)} resource(s) (first: {first.op} {first.path} {first.detail}); serve it without "
            f"--inventory, then `tropic inventory plan {inv.file}` and `tropic inventory apply {inv.file}`"
        )


def warn_mismatch(inv: Inventory, model: Model) -> None:
    """On taking the lead of a zk:// store that already held a model: say when it differs from the file."""
    from tropic.inventory.seed import mismatches

    changes = mismatches(inv, model)
    if changes:
        log.warning(
            "%s: the store's model differs from the file in %d resource(s) (first: %s %s); it is served "
            "as stored: run `tropic inventory apply %s` to change it",
            inv.file,
            len(changes),
            changes[0].op,
            changes[0].path,
            inv.file,
        )


def open_distributed_driver(uri: str | None, *, resolver: Callable[[], Model | None] | None = None) -> Driver:
    """The driver of a distributed-mode process: devices every controller and worker reaches, behind a
    router (:mod:`tropic.drivers.router`) that a controller binds to its model when it takes over, and a
    worker with ``resolver`` (how to read the model) when a step touches a device it does not know."""
    from tropic.drivers.registry import open_driver
    from tropic.drivers.router import RouterDriver

    if uri is None or uri in ("sim://", "sim:", "sim"):
        raise ConfigError(
            "distributed mode needs devices every controller and worker reaches: "
            "--driver sim:///PATH/devices.db (simulated, one machine) or a real driver URI"
        )
    return RouterDriver(open_driver(uri, shared=True), resolver=resolver)


def build_service(config: ServiceConfig) -> Service:
    """Open everything the service runs; a :class:`~tropic.errors.TropicError` names what is wrong, and
    nothing has been served by then."""
    check_tls(config.tls_cert, config.tls_key)
    config.autopilot.check()
    spec = parse_store_uri(config.store)
    sock = bind_listener(config, spec)
    try:
        service: Service = (ReplicatedService if spec.scheme == "zk" else EmbeddedService)(config, spec)
    except BaseException:
        sock.close()
        raise
    service.sockets = [sock]
    return service


__all__ = [
    "EmbeddedService",
    "ReplicatedService",
    "Service",
    "ServiceConfig",
    "bind_listener",
    "build_service",
    "check_tls",
    "make_server",
    "open_distributed_driver",
]
