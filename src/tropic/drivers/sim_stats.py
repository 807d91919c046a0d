"""The sim's readings: its VMs' CPU utilisation played from a :class:`~tropic.drivers.base.UtilisationSource`
(e.g. the autopilot's PlanetLab trace player), their memory as reserved (the whole of ``memory_mib``).

Without a source the sim reads nothing (every subject stays unknown, never 0%). A running VM the source
knows nothing about is left out; a stopped VM uses no CPU."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from tropic.drivers.base import Stats, UtilisationSource
from tropic.model import RUNNING


class SimStats:
    """:meth:`~tropic.drivers.base.Driver.stats` of :class:`~tropic.drivers.sim.SimDriver`."""

    hosts: dict[str, dict[str, Any]]
    _lock: threading.Lock
    utilisation: UtilisationSource | None = None  # what the VMs demand (set by whoever drives the sim)

    def stats(self, hosts: Iterable[str], now: float) -> Stats:
        source = self.utilisation
        if source is None:
            return {}
        with self._lock:
            found = {
                h: {n: dict(v) for n, v in self.hosts[h]["vms"].items()} for h in hosts if h in self.hosts
            }
        out: Stats = {}
        for host, vms in found.items():
            region = host.split("/")[2] if host.count("/") >= 3 else ""
            demand = 0.0
            known = True
            for name, spec in sorted(vms.items()):
                if spec.get("state", RUNNING) != RUNNING:
                    out[f"{host}/{name}"] = {"cpu": 0.0, "memory": 0.0}
                    continue
                cpu = source.cpu(f"{region}/{name}", now)
                if cpu is None:
                    known = False
                    continue
                cpu = min(1.0, max(0.0, float(cpu)))
                out[f"{host}/{name}"] = {"cpu": cpu, "memory": 1.0, "vcpus": float(spec["vcpus"])}
                demand += cpu * int(spec["vcpus"])
            if known:  # a host with a VM of unknown demand has an unknown demand
                out[host] = {
                    "demand_cores": demand,
                    "memory_used_mib": float(
                        sum(int(s["memory_mib"]) for s in vms.values() if s.get("state", RUNNING) == RUNNING)
                    ),
                }
        return out
