"""Autopilot policies, by name: ``tropic serve --autopilot NAME[,NAME...]`` picks them from
:data:`POLICIES` (each entry builds a :class:`~tropic.autopilot.base.Policy` from keyword options)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tropic.autopilot.base import Policy, PolicyError
from tropic.autopilot.policies.consolidation import make_consolidation
from tropic.autopilot.policies.hotspot import HotspotRelief
from tropic.autopilot.policies.image_gc import ImageGC
from tropic.autopilot.policies.psepr import make_psepr

POLICIES: dict[str, Callable[..., Policy]] = {
    "hotspot": HotspotRelief,
}
POLICIES["consolidation"] = make_consolidation
POLICIES["psepr"] = make_psepr
POLICIES["image-gc"] = ImageGC


# Policies that act on one named target, given as ``NAME:TARGET`` (e.g. ``psepr:overlay``).
TARGETED: dict[str, str] = {
    "psepr": "the managed service it keeps at its optimum (psepr:<service>)",
    "sun": "the managed service whose members follow the sun (sun:<service>)",
}
# Policies whose ``:TARGET`` is optional settings (e.g. ``image-gc:3/7d``, its retention).
TUNABLE = {"image-gc"}


def _split(spec: str) -> tuple[str, str]:
    name, _, target = spec.strip().partition(":")
    name, target = name.strip(), target.strip()
    if name not in POLICIES:
        raise PolicyError(f"unknown autopilot policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    if name in TARGETED and not target:
        raise PolicyError(f"autopilot policy {name!r} needs {TARGETED[name]}")
    if name not in TARGETED and name not in TUNABLE and target:
        raise PolicyError(f"autopilot policy {name!r} takes no target (got {spec.strip()!r})")
    return name, target


def make_policy(spec: str, **options: Any) -> Policy:
    """The policy ``spec`` names (``NAME`` or, for :data:`TARGETED` ones, ``NAME:TARGET``); one clear
    error naming the known ones when it is unknown, or when a target is missing or unexpected."""
    name, target = _split(spec)
    factory = POLICIES[name]
    return factory(target, **options) if target else factory(**options)


def parse_policies(text: str) -> list[str]:
    """``hotspot,psepr:overlay`` -> the specs, each checked against :data:`POLICIES`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PolicyError("--autopilot needs at least one policy name")
    for n in names:
        _split(n)
    return names


__all__ = ["POLICIES", "TARGETED", "make_policy", "parse_policies"]
