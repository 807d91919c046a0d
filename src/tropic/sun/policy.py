"""The follow-the-sun autopilot plug-in, built from a matrix and a demand file and registered as ``sun``
in :data:`tropic.autopilot.policies.POLICIES` (``tropic serve --autopilot sun:<service>``). The plug-in
(:class:`tropic.autopilot.policies.sun.SunPolicy`) runs a :class:`~tropic.sun.planner.SunPlanner`."""

from __future__ import annotations

from pathlib import Path

from tropic.autopilot.base import PolicyError
from tropic.autopilot.policies import POLICIES
from tropic.autopilot.policies.sun import SunPolicy
from tropic.errors import TropicError
from tropic.sun.planner import SunConfig, SunPlanner
from tropic.sun.run import SunSpec, load_inputs


def make_sun(service: str = "", latency: str = "", demand: str = "", **options: float) -> SunPolicy:
    """The plug-in for ``service`` on a matrix and a demand file (the defaults of ``tropic sun`` when not
    given); ``options`` are :class:`~tropic.sun.planner.SunConfig` fields."""
    if not service:
        raise PolicyError("sun: the policy needs service=<name> (the service whose members follow the sun)")
    fields = set(SunConfig.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise PolicyError(f"sun: unknown option {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    config = SunConfig(**options)  # type: ignore[arg-type]
    spec = SunSpec(Path(latency) if latency else None, Path(demand) if demand else None, config=config)
    try:
        _, _, matrix, day = load_inputs(spec)
    except TropicError as e:
        raise PolicyError(f"sun: {e.message}") from e
    return SunPolicy(service, SunPlanner(matrix, day, config))


def register() -> None:
    """Make ``sun`` a policy name of the autopilot (idempotent)."""
    POLICIES.setdefault("sun", make_sun)
