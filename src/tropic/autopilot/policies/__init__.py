"""The autopilot's policies, by name: each entry builds a :class:`~tropic.autopilot.base.Policy` from its
configuration options (keyword arguments); an unknown option or an impossible value is a
:class:`~tropic.autopilot.base.PolicyError`."""

from __future__ import annotations

from collections.abc import Callable

from tropic.autopilot.base import Policy
from tropic.autopilot.policies.consolidation import make_consolidation
from tropic.autopilot.policies.psepr import make_psepr

POLICIES: dict[str, Callable[..., Policy]] = {}
POLICIES["consolidation"] = make_consolidation
POLICIES["psepr"] = make_psepr
