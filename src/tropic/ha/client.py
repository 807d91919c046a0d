"""The client library of highly available jobs: discovery, timeouts and transparent failover.

``HAClient(zk_uri, job)`` finds the live replicas in ``replicas/`` (a watch keeps the list fresh), sends
each request to the replica that answered last, and on a refused connection, a closed one, an error reply
("catching up", "stopping", ...) or a per-attempt timeout, retries the *same* ``(client, seq)`` on the next
replica, so the request is applied once whichever attempt lands. Per-attempt timeouts start short (a dead
replica on the same machine is noticed at once through a refused or reset connection; a hung one after
``attempt_timeout``) and double with each round over all replicas, so a slow but healthy job is not
flooded; past ``timeout`` the call raises :class:`~tropic.ha.contract.HAUnavailable`.

One request is in flight per client (calls are serialised): a client id's sequence numbers must arrive in
order. Run one ``HAClient`` per concurrent caller.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import WatchedEvent

from tropic.errors import InvalidArguments, TropicError
from tropic.ha.codec import WireError, decode_reply, encode
from tropic.ha.contract import Consistency, HAUnavailable, ReplicaInfo, Reply, Request
from tropic.ha.log import TRANSIENT, RequestLog
from tropic.store.zkclient import open_client

__all__ = ["HAClient"]

# A replica that failed an attempt is tried last for this long.
SUSPECT_S = 2.0
MAX_ATTEMPT_S = 4.0


class _Conn:
    def __init__(self, address: str, timeout: float) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def exchange(self, request: Request, timeout: float) -> Reply:
        self.sock.settimeout(timeout)
        self.sock.sendall(encode(request) + b"\n")
        stop_at = time.monotonic() + timeout
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionResetError("the replica closed the connection")
            reply = decode_reply(line)
            if reply.seq == request.seq and reply.client in (request.client, ""):
                return reply
            if time.monotonic() > stop_at:  # a late answer to an earlier attempt: skip it
                raise TimeoutError("no answer in time")
            self.sock.settimeout(max(0.001, stop_at - time.monotonic()))

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class HAClient:
    """A client of HA job ``job``; implements :class:`tropic.ha.contract.Client`.

    ``timeout``: the overall deadline of one call (then :class:`HAUnavailable`). ``attempt_timeout``: the
    first per-attempt timeout (doubled each round over the replicas, up to 4 s). ``client_id``: the
    identity under which retries are recognised (default: a fresh random one); its sequence numbers start
    from the current time in microseconds, so a restarted client reusing its id is never taken for a
    retry of an older request. ``zk``: a started kazoo client to share (default: one of its own).
    """

    def __init__(
        self,
        zk_uri: str,
        job: str,
        *,
        timeout: float = 30.0,
        client_id: str | None = None,
        attempt_timeout: float = 0.5,
        connect_timeout: float = 0.25,
        zk: KazooClient | None = None,
    ) -> None:
        if timeout <= 0 or attempt_timeout <= 0 or connect_timeout <= 0:
            raise InvalidArguments("HA client timeouts must be positive")
        self.job = job
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.connect_timeout = connect_timeout
        self.client_id = client_id or f"c-{uuid.uuid4().hex[:16]}"
        self._seq = time.time_ns() // 1000
        self._own_zk = zk is None
        self._zk = open_client(zk_uri, connect_timeout=20.0) if zk is None else zk
        # discovery must not hold a call up for long while ZooKeeper fails over: the cached list serves
        self._log = RequestLog(self._zk, job, timeout=1.0)
        self._lock = threading.Lock()
        self._replicas: dict[str, ReplicaInfo] = {}
        self._stale = True
        self._preferred: str | None = None
        self._suspect: dict[str, float] = {}
        self._conns: dict[str, _Conn] = {}
        self.failovers = 0  # attempts that moved to another replica (for measurements)

    # --- discovery ---------------------------------------------------------------------------------
    def _on_change(self, _event: WatchedEvent) -> None:
        self._stale = True

    def _refresh(self) -> None:
        self._stale = False
        try:
            self._replicas = self._log.live(watch=self._on_change)
        except NoNodeError:
            self._replicas = {}  # no replica of the job has ever started
            self._stale = True
        except (TropicError, *TRANSIENT, self._zk.handler.timeout_exception):
            self._stale = True  # ZooKeeper unreachable: go on with what we knew

    def replicas(self) -> dict[str, ReplicaInfo]:
        """The live replicas as last seen."""
        with self._lock:
            self._refresh()
            return dict(self._replicas)

    def _candidates(self) -> list[ReplicaInfo]:
        if self._stale or not self._replicas:
            self._refresh()
        now = time.monotonic()

        def rank(info: ReplicaInfo) -> tuple[int, int, int, str]:
            return (
                self._suspect.get(info.replica, 0.0) > now,
                info.replica != self._preferred,
                info.state != "serving",
                info.replica,
            )

        return sorted(self._replicas.values(), key=rank)

    # --- calls -------------------------------------------------------------------------------------
    def call(
        self, op: dict[str, Any], *, consistency: Consistency = "linearizable", read: bool = False
    ) -> Any:
        """Apply ``op`` (or read, with ``consistency="local"``) and return the program's answer.
        ``read=True`` declares that ``op`` does not change the program's state: a linearizable read, which
        a replica on the ``sync`` read path answers without a ZooKeeper write (on the ``log`` path it is
        appended like any request). Marking a request that changes the state makes the replicas diverge."""
        if not isinstance(op, dict):
            raise InvalidArguments(f"an HA request must be a JSON object, not {type(op).__name__}")
        if consistency not in ("linearizable", "local"):
            raise InvalidArguments(f"consistency must be 'linearizable' or 'local', not {consistency!r}")
        with self._lock:
            self._seq += 1
            request = Request(self.client_id, self._seq, op, consistency, read)
            return self._call(request)

    def _call(self, request: Request) -> Any:
        start = time.monotonic()
        deadline = start + self.timeout
        attempt_s = self.attempt_timeout
        pause = 0.02
        errors: list[str] = []
        first = True
        while time.monotonic() < deadline:
            for info in self._candidates():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not first:
                    self.failovers += 1
                first = False
                outcome = self._attempt(info, request, min(attempt_s, left))
                if isinstance(outcome, Reply):
                    if outcome.ok:
                        self._preferred = info.replica
                        return outcome.reply
                    if outcome.error.startswith("malformed request"):
                        raise InvalidArguments(f"HA job {self.job} refused the request: {outcome.error}")
                    outcome = outcome.error
                errors.append(f"{info.replica}: {outcome}")
                self._suspect[info.replica] = time.monotonic() + SUSPECT_S
                if info.replica == self._preferred:
                    self._preferred = None
            # a full round failed: look again, wait a little, give the next round more time
            self._stale = True
            attempt_s = min(attempt_s * 2, MAX_ATTEMPT_S)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)
        tried = "; ".join(errors[-6:]) or "no live replica registered"
        raise HAUnavailable(
            f"no replica of HA job {self.job} answered request {request.client}/{request.seq} within "
            f"{self.timeout:g} s ({tried})"
        )

    def _attempt(self, info: ReplicaInfo, request: Request, timeout: float) -> Reply | str:
        conn = self._conns.get(info.address)
        try:
            if conn is None:
                conn = _Conn(info.address, min(timeout, self.connect_timeout))
                self._conns[info.address] = conn
            return conn.exchange(request, timeout)
        except (OSError, ValueError, WireError) as exc:  # refused, reset, timed out, garbled
            self._drop(info.address)
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _drop(self, address: str) -> None:
        conn = self._conns.pop(address, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            for address in list(self._conns):
                self._drop(address)
            if self._own_zk:
                self._zk.stop()
                self._zk.close()

    def __enter__(self) -> HAClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
