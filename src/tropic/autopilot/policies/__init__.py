"""Autopilot policies, by name: ``tropic serve --autopilot NAME[,NAME...]`` picks them from
:data:`POLICIES` (each entry builds a :class:`~tropic.autopilot.base.Policy` from keyword options)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tropic.autopilot.base import Policy, PolicyError
from tropic.autopilot.policies.consolidation import make_consolidation
from tropic.autopilot.policies.hotspot import HotspotRelief
from tropic.autopilot.policies.psepr import make_psepr
from tropic.autopilot.policies.sun import make_sun

POLICIES: dict[str, Callable[..., Policy]] = {
    "hotspot": HotspotRelief,
}
POLICIES["consolidation"] = make_consolidation
POLICIES["psepr"] = make_psepr
POLICIES["sun"] = make_sun


def make_policy(name: str, **options: Any) -> Policy:
    """The policy ``name`` (one clear error naming the known ones when it is unknown)."""
    factory = POLICIES.get(name)
    if factory is None:
        raise PolicyError(f"unknown autopilot policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return factory(**options)


def parse_policies(text: str) -> list[str]:
    """``hotspot,consolidation`` -> the names, each checked against :data:`POLICIES`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PolicyError("--autopilot needs at least one policy name")
    for n in names:
        if n not in POLICIES:
            raise PolicyError(f"unknown autopilot policy {n!r}; known: {', '.join(sorted(POLICIES))}")
    return names


__all__ = ["POLICIES", "make_policy", "parse_policies"]
