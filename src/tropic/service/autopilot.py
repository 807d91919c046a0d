"""The autopilot as a part of the service: ``tropic serve --autopilot POLICY[,...]`` builds a
:class:`~tropic.autopilot.coordinator.Coordinator` for the controller it leads with (embedded: the
server's; ZooKeeper: the elected replica's, one per term, stopped when it steps down)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tropic.autopilot.actuator import ControllerExecutor, Guards
from tropic.autopilot.coordinator import Coordinator, SnapshotSource
from tropic.autopilot.fleet import fleet_snapshot
from tropic.autopilot.passes import passbook_for
from tropic.autopilot.policies import make_policy, parse_policies
from tropic.txn import Controller


def model_source(controller: Controller) -> SnapshotSource:
    """The committed model with no predicted demand (every VM unknown): what the loop sees until a
    sensor source is given (:attr:`AutopilotSettings.source`)."""
    return lambda at: controller.call(lambda: fleet_snapshot(controller.model, at))


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
    source: Callable[[Controller], SnapshotSource] = field(default=model_source)

    def check(self) -> None:
        """Refuse unknown policies and bad numbers before anything is served."""
        from tropic.autopilot.base import PolicyError
        from tropic.errors import ConfigError

        if not self.policies:
            return
        try:
            for name in parse_policies(self.policies):
                make_policy(name)
        except PolicyError as e:
            raise ConfigError(f"--autopilot: {e.message}") from None
        if self.interval <= 0:
            raise ConfigError(f"--autopilot-interval {self.interval:g} must be positive (seconds)")
        try:
            self.guards()
        except ValueError as e:
            raise ConfigError(f"autopilot guards: {e}") from None

    def guards(self) -> Guards:
        return Guards(
            budget_per_pass=self.budget_per_pass,
            per_vm_per_day=self.per_vm_per_day,
            hysteresis=self.hysteresis,
            cooldown_s=self.cooldown_s,
            dry_run=self.dry_run,
        )


def build_coordinator(controller: Controller, settings: AutopilotSettings) -> Coordinator | None:
    """The coordinator for ``controller`` (None without ``--autopilot``), not started yet."""
    if not settings.policies:
        return None
    return Coordinator(
        settings.source(controller),
        [make_policy(n) for n in parse_policies(settings.policies)],
        ControllerExecutor(controller),
        passbook_for(controller.store),
        guards=settings.guards(),
        interval=settings.interval,
        time_limit=settings.time_limit,
    )
