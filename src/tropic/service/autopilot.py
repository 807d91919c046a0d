"""The autopilot as a part of the service: ``tropic serve --autopilot POLICY[,...]`` builds a
:class:`~tropic.autopilot.coordinator.Coordinator` for the controller it leads with (embedded: the
server's; ZooKeeper: the elected replica's, one per term, stopped when it steps down)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tropic.autopilot.actuator import ControllerExecutor, Guards
from tropic.autopilot.base import Observation, Snapshot
from tropic.autopilot.coordinator import RESUME_WITHIN_S, Coordinator, SnapshotSource
from tropic.autopilot.decision_store import decision_book_for
from tropic.autopilot.decisions import DecisionLog
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.kb import KnowledgeBase
from tropic.autopilot.passes import passbook_for
from tropic.autopilot.policies import make_policy, parse_policies
from tropic.autopilot.predict import Predictor, snapshot
from tropic.autopilot.sensors import UtilisationSensor
from tropic.autopilot.traces import TracePlayer, load_planetlab, sample_path
from tropic.drivers.sim_stats import SimStats
from tropic.model import Model
from tropic.txn import Controller


def model_source(controller: Controller) -> SnapshotSource:
    """The committed model with no predicted demand (every VM unknown): a source for tests that give
    demand otherwise (:attr:`AutopilotSettings.source`)."""
    return lambda at: controller.call(lambda: fleet_snapshot(controller.model, at))


class _Hosts:
    """The hosts of a model, copied on the logical thread: what the utilisation sensor reads from a
    pass's thread while transactions go on."""

    def __init__(self, model: Model) -> None:
        self.nodes = {p: n for p, n in model.nodes.items() if n.kind == "host"}


class SensedSource:
    """Sense, remember, predict (the service's source). :meth:`sense` reads the utilisation of every host
    and VM through the controller's driver (the sim plays its traces, libvirt reads its counters) and
    keeps the readings in the knowledge base in the controller's store; calling the source senses, then
    predicts each VM's demand from the window kept there and builds the pass's snapshot. The coordinator
    also reads the sensors between passes (:meth:`watch`, not recorded), so a hot reading triggers a pass
    without waiting for the period. A new leader first reads back what its predecessor recorded. Device
    reads run on the caller's thread; only the model copies run on the logical thread."""

    def __init__(self, controller: Controller, predictor: Predictor | None = None) -> None:
        self.controller = controller
        self.kb = KnowledgeBase(controller.store)
        self.kb.load(time.time())
        self.sensor = UtilisationSensor(
            controller.driver,
            lambda: controller.call(lambda: _Hosts(controller.model)),  # type: ignore[arg-type, return-value]
        )
        self.predictor = predictor or Predictor()
        self._lock = threading.Lock()  # the loop's sensing and a pass may read at once

    def sense(self, at: float, *, record: bool = True) -> list[Observation]:
        """Read the sensors at ``at``; ``record``: keep the readings in the knowledge base (a pass's).
        Between passes the loop only looks at them (:meth:`watch`), so the series keep one reading per
        pass and the predictor's window keeps its meaning (its last 12 passes)."""
        with self._lock:
            readings = self.sensor.read(at)
            if record:
                self.kb.record(readings, at)
            return readings

    def watch(self, at: float) -> list[Observation]:
        """The loop's reading between passes: looked at for hot hosts, not recorded."""
        return self.sense(at, record=False)

    def __call__(self, at: float) -> Snapshot:
        self.sense(at)
        c = self.controller
        with self._lock:
            return c.call(lambda: snapshot(c.model, self.kb, at, predictor=self.predictor))


def sensed_source(controller: Controller, *, predictor: Predictor | None = None) -> SensedSource:
    """The service's source (see :class:`SensedSource`)."""
    return SensedSource(controller, predictor)


@dataclass(slots=True)
class AutopilotSettings:
    """What ``tropic serve --autopilot...`` takes."""

    policies: str = ""  # comma-separated names (empty: no autopilot)
    interval: float = 300.0
    dry_run: bool = False
    budget_per_pass: int = 5
    per_vm_per_day: int = 3
    hysteresis: float = 1.5
    cooldown_s: float = 3600.0
    time_limit: float = 10.0
    source: Callable[[Controller], SnapshotSource] = field(default=sensed_source)
    sim_trace: str = ""  # a PlanetLab-format file, or "sample": what the sim's VMs demand
    sim_trace_speed: float = 1.0
    sense_interval: float = 60.0  # seconds between sensor reads between passes (hot readings trigger one)

    def check(self) -> None:
        """Refuse unknown policies and bad numbers before anything is served."""
        from tropic.autopilot.base import PolicyError
        from tropic.errors import ConfigError, TropicError

        if not self.policies:
            return
        try:
            for name in parse_policies(self.policies):
                make_policy(name)
        except PolicyError as e:
            raise ConfigError(f"--autopilot: {e.message}") from None
        try:
            self.player()
        except TropicError as e:
            raise ConfigError(f"--sim-trace: {e.message}") from None
        if self.interval <= 0:
            raise ConfigError(f"--autopilot-interval {self.interval:g} must be positive (seconds)")
        if self.sense_interval <= 0:
            raise ConfigError(
                f"--autopilot-sense-interval {self.sense_interval:g} must be positive (seconds)"
            )
        try:
            self.guards()
        except ValueError as e:
            raise ConfigError(f"autopilot guards: {e}") from None

    def player(self) -> TracePlayer | None:
        """The trace the simulated VMs play (None without ``--sim-trace``); a bad file is a clear error."""
        if not self.sim_trace:
            return None
        path = sample_path() if self.sim_trace == "sample" else self.sim_trace
        return TracePlayer(load_planetlab(path), start=time.time(), speed=self.sim_trace_speed)

    def guards(self) -> Guards:
        return Guards(
            budget_per_pass=self.budget_per_pass,
            per_vm_per_day=self.per_vm_per_day,
            hysteresis=self.hysteresis,
            cooldown_s=self.cooldown_s,
            dry_run=self.dry_run,
        )


def build_coordinator(
    controller: Controller, settings: AutopilotSettings, *, key_ttl: float = RESUME_WITHIN_S
) -> Coordinator | None:
    """The coordinator for ``controller`` (None without ``--autopilot``), not started yet."""
    if not settings.policies:
        return None
    player = settings.player()
    if player is not None:
        play(controller.driver, player)
    source = settings.source(controller)
    return Coordinator(
        source,
        [make_policy(n) for n in parse_policies(settings.policies)],
        ControllerExecutor(controller),
        passbook_for(controller.store),
        guards=settings.guards(),
        interval=settings.interval,
        time_limit=settings.time_limit,
        decisions=DecisionLog(book=decision_book_for(controller.store)),
        sense=getattr(source, "watch", None),
        sense_interval=settings.sense_interval,
        resume_within=key_ttl,
    )


def play(driver: object, player: TracePlayer) -> int:
    """Have every simulated backend of ``driver`` (itself, or a router's) play ``player``; returns how many
    took it (libvirt backends read their own counters)."""
    backends = getattr(driver, "backends", None)
    drivers = list(backends.values()) if isinstance(backends, dict) else [driver]
    n = 0
    for d in drivers:
        if isinstance(d, SimStats):
            d.utilisation = player
            n += 1
    return n
