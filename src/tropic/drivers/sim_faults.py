"""The sim driver's fault injection and out-of-band hangs: rules matched against physical steps.

A :class:`Fault` fails matching steps (deterministically under a seed, see :func:`uniform`); a :class:`Hang`
makes a device stop answering until released. :class:`~tropic.drivers.sim.SimDriver` applies both.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tropic.drivers.base import Step, covers
from tropic.errors import DriverError
from tropic.model import Value


@dataclass(slots=True)
class Fault:
    """A fault-injection rule. A step matches when its action, direction and argument subset match."""

    action: str | None = None  # None: any action
    probability: float = 1.0
    nth: int | None = None  # fail only the nth matching call (1-based)
    undo: bool = False  # match undo steps (True) or forward steps (False)
    match: Mapping[str, Value] = field(default_factory=dict)
    path: str | None = None  # match steps on this resource path only
    times: int | None = None  # fire at most this many times
    after: bool = False  # apply the effect first, then fail ("did it happen?")
    message: str = "injected device fault"
    calls: int = 0
    fired: int = 0

    def matches(self, step: Step) -> bool:
        if self.action is not None and step.action != self.action:
            return False
        if step.undo != self.undo:
            return False
        if self.path is not None and step.path != self.path:
            return False
        return all(step.args.get(k) == v for k, v in self.match.items())

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Fault:
        allowed = {"action", "probability", "nth", "undo", "match", "path", "times", "after", "message"}
        unknown = set(d) - allowed
        if unknown:
            raise DriverError(f"unknown fault field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        return Fault(**{k: v for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("calls")
        d.pop("fired")
        d["match"] = dict(self.match)
        return d


@dataclass(slots=True, eq=False)
class Hang:
    """An out-of-band hang: matching calls block until :meth:`SimDriver.release` or until ``timeout``
    seconds pass, when the device gives up and fails the call (:class:`~tropic.errors.DeviceTimeout`).

    A step matches when its resource is at or below ``path`` (and its action is ``action``, when given);
    with ``action`` None, reads of a device at or above ``path`` (``reload``, ``probe``) hang too.
    """

    path: str
    action: str | None = None
    undo: bool | None = None  # match undo steps (True), forward steps (False), or both (None)
    times: int | None = None  # hang at most this many calls (None: every call until released)
    effect: bool = False  # apply the step's effect before hanging: the work is done, the answer is lost
    timeout: float = 30.0
    entered: threading.Event = field(default_factory=threading.Event)  # a call is hanging (tests wait)
    released: threading.Event = field(default_factory=threading.Event)
    proceed: bool = True  # released calls go on (True) or fail without effect (False)
    hung: int = 0  # calls that hung so far

    def matches_step(self, step: Step) -> bool:
        if self.action is not None and step.action != self.action:
            return False
        if self.undo is not None and step.undo != self.undo:
            return False
        return covers(self.path, step.path)

    def matches_read(self, path: str) -> bool:
        return self.action is None and (covers(path, self.path) or covers(self.path, path))


def uniform(seed: int, step: Step) -> float:
    """A number in [0, 1) that depends only on the seed and the step's identity (not on timing)."""
    key = f"{seed}:{step.txn}:{step.index}:{int(step.undo)}:{step.action}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


__all__ = ["Fault", "Hang", "uniform"]
