"""The standard iterative pre-copy model of a live migration (Clark et al., NSDI 2005; Akoush et al.,
MASCOTS 2010), used for a cross-region migration's transfer time and downtime.

With memory ``M`` (MiB), a dirty rate ``D`` (MiB/s) and a bandwidth ``B`` (MiB/s) between the two regions:

* round 0 sends the whole memory: ``V0 = M``, taking ``t0 = V0 / B``;
* round ``i`` sends what was dirtied during round ``i - 1``: ``Vi = D x t(i-1) = M x (D/B)^i``, taking
  ``ti = Vi / B``;
* pre-copy stops after the first round whose remainder ``V(n+1)`` is at most ``stop_mib`` (small enough to
  stop and copy), or after ``max_rounds`` rounds, or at once when ``D >= B`` (the remainder would not
  shrink);
* stop-and-copy: the VM is paused while the remainder ``V(n+1)`` is sent, plus one round trip to switch
  over and the resume time: ``downtime = V(n+1) / B + rtt + resume``.

``transfer_s`` is the whole migration: every pre-copy round plus the downtime.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PreCopy:
    rounds: int  # pre-copy rounds run (round 0 included)
    sent_mib: float  # everything sent, the stop-and-copy remainder included
    transfer_s: float  # from the first byte to the VM running at the destination
    downtime_s: float  # the VM paused: stop-and-copy + switch-over round trip + resume


def precopy(
    memory_mib: float,
    *,
    dirty_mib_s: float,
    bandwidth_mib_s: float,
    rtt_ms: float = 0.0,
    max_rounds: int = 30,
    stop_mib: float = 1.0,
    resume_s: float = 0.02,
) -> PreCopy:
    """The pre-copy of ``memory_mib`` at ``bandwidth_mib_s`` while the guest dirties ``dirty_mib_s``."""
    if memory_mib < 0 or dirty_mib_s < 0 or rtt_ms < 0 or resume_s < 0:
        raise ValueError("memory, dirty rate, round trip and resume time must be >= 0")
    if bandwidth_mib_s <= 0:
        raise ValueError("bandwidth must be > 0")
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    remaining = float(memory_mib)
    sent = 0.0
    elapsed = 0.0
    rounds = 0
    while rounds < max_rounds:
        t = remaining / bandwidth_mib_s
        sent += remaining
        elapsed += t
        rounds += 1
        remaining = dirty_mib_s * t
        if remaining <= stop_mib or dirty_mib_s >= bandwidth_mib_s:
            break
    downtime = remaining / bandwidth_mib_s + rtt_ms / 1000.0 + resume_s
    return PreCopy(
        rounds=rounds, sent_mib=sent + remaining, transfer_s=elapsed + downtime, downtime_s=downtime
    )
