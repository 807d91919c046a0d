"""A real ZooKeeper ensemble whose members sit in emulated regions, behind the delay proxy.

Every ordered pair of members ``(i, j)`` has two proxy routes (``j``'s quorum and election ports) and
server ``i``'s ``zoo.cfg`` names them as ``j``'s address, so each direction of each pair is delayed by
the pair's half round trip. Every client region ``g`` has one route per member (to its client port). A
member's routes, hence its address as every peer and client knows it, never change: a migration only
re-points their delays to the member's new region, and pauses the server (SIGSTOP/SIGCONT) for the
stop-and-copy downtime.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from pathlib import Path

from tropic.cluster.zk_ensemble import ZooKeeperEnsemble
from tropic.sun.contract import LatencyMatrix
from tropic.sun.emulate.proxy import DelayProxy
from tropic.sun.emulate.topology import member_rtt_ms

__all__ = ["WideArea"]


def _hold(ports: list[int]) -> list[socket.socket]:
    held = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:  # taken meanwhile: the server's start will say so
            sock.close()
            continue
        held.append(sock)
    return held


class WideArea:
    """``len(regions)`` ZooKeeper servers, member ``k`` in ``regions[k]``, and clients attached to the
    matrix regions ``client_regions``; see the module docstring."""

    def __init__(
        self,
        matrix: LatencyMatrix,
        regions: Sequence[str],
        client_regions: Sequence[str],
        *,
        base_dir: Path | str | None = None,
        tick_ms: int = 500,
        heap_mb: int = 128,
        delay_factor: float = 1.0,
    ) -> None:
        for region in (*regions, *client_regions):
            if region not in matrix.rtt_ms:
                raise ValueError(f"region {region!r} is not in the latency matrix")
        self.matrix = matrix
        self.regions = list(regions)
        self.client_regions = list(client_regions)
        self.delay_factor = delay_factor  # every delay x this (0: none, > 1: time dilation)
        self.proxy = DelayProxy()
        try:
            self.ensemble = ZooKeeperEnsemble(
                base_dir, size=len(self.regions), force_sync=False, heap_mb=heap_mb, tick_ms=tick_ms
            )
            n = len(self.regions)
            # The servers' ports were free a moment ago; hold them while the proxy takes ports of its own,
            # so that the kernel cannot hand one of them to a route.
            held = _hold(
                [p for i in range(n) for p in (*self.ensemble.peer_ports(i), self.ensemble.client_port(i))]
            )
            try:
                peers: dict[int, dict[int, tuple[int, int]]] = {}
                for i in range(n):
                    peers[i] = {}
                    for j in range(n):
                        if i != j:
                            quorum, election = self.ensemble.peer_ports(j)
                            delay = self._peer_delay(i, j)
                            q = self.proxy.add_route(("quorum", i, j), quorum, delay)
                            e = self.proxy.add_route(("election", i, j), election, delay)
                            peers[i][j] = (q.listen_port, e.listen_port)
                for g in self.client_regions:
                    for j in range(n):
                        self.proxy.add_route(
                            ("client", g, j), self.ensemble.client_port(j), self._client_delay(g, j)
                        )
            finally:
                for sock in held:
                    sock.close()
            self.ensemble.route_peers(peers)
        except BaseException:
            self.proxy.close()
            raise

    # --- delays ------------------------------------------------------------------------------------
    def _peer_delay(self, i: int, j: int) -> float:
        return self.delay_factor * member_rtt_ms(self.matrix, self.regions, i, j) / 2000.0

    def _client_delay(self, g: str, j: int) -> float:
        return self.delay_factor * self.matrix.rtt(g, self.regions[j]) / 2000.0

    def set_delay_factor(self, factor: float) -> None:
        """Scale every delay (0: the ensemble and the proxy alone, the run's service-time baseline;
        above 1: time dilation)."""
        self.delay_factor = factor
        self._apply_delays()

    def _apply_delays(self) -> None:
        for key in self.proxy.routes:
            assert isinstance(key, tuple)
            kind, a, j = key
            delay = self._client_delay(a, j) if kind == "client" else self._peer_delay(a, j)
            self.proxy.set_delay(key, delay)

    # --- addresses ---------------------------------------------------------------------------------
    def client_ports(self, client_region: str) -> dict[int, int]:
        """Member -> the port a client in ``client_region`` dials to reach it (its proxy route)."""
        return {
            j: self.proxy.route(("client", client_region, j)).listen_port for j in range(len(self.regions))
        }

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        self.ensemble.start_all(timeout=timeout)

    def leader(self, timeout: float = 60.0) -> int:
        """The member ZooKeeper elected (``srvr``), waiting until the ensemble serves."""
        self.ensemble.wait_serving(timeout=timeout)
        deadline = time.monotonic() + timeout
        while (leader := self.ensemble.leader()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no leader within {timeout:g} s: {self.ensemble.describe()}")
            time.sleep(0.1)
        return leader

    def place(self, regions: Sequence[str]) -> None:
        """Put every member in ``regions`` at once (no pause: a new day starts from its placement)."""
        if len(regions) != len(self.regions):
            raise ValueError(f"{len(regions)} regions for {len(self.regions)} members")
        self.regions = list(regions)
        self._apply_delays()

    def migrate(self, member: int, region: str, pause_s: float) -> None:
        """Move ``member`` to ``region``: paused for ``pause_s`` (the stop-and-copy), its routes
        re-pointed meanwhile; it keeps its address."""
        if region not in self.matrix.rtt_ms:
            raise ValueError(f"region {region!r} is not in the latency matrix")
        self.ensemble.pause(member)
        try:
            self.regions[member] = region
            self._apply_delays()
            time.sleep(pause_s)
        finally:
            self.ensemble.resume(member)

    def close(self) -> None:
        try:
            self.ensemble.close()
        finally:
            self.proxy.close()

    def __enter__(self) -> WideArea:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
