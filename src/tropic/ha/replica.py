"""The replica wrapper: makes an unmodified stdin/stdout program one replica of a highly available job.

It starts the program, registers ``replicas/<ID>`` (ephemeral), restores the newest usable snapshot,
applies the request log in order (watching it, no polling), and once caught up serves the client wire:
a write is appended to the log and answered when this replica has applied it; a linearizable read (a
request the client marks ``read``) is too with ``--read-path log``, while with ``--read-path sync`` the
replica syncs with ZooKeeper, reads the log's child counter and answers from its state once it has applied
a listing of the log with at least that counter (no ZooKeeper write); a ``local`` read is answered from the
local state. A ``(client, seq)`` already applied is not applied again and is answered with its first
reply. Every ``--snapshot-every`` entries it snapshots the program (when the program supports it) and
truncates the log. Run ``python -m tropic.ha.replica --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState, WatchedEvent

from tropic.errors import TropicError
from tropic.ha.codec import WireError, decode_request, encode
from tropic.ha.contract import (
    READ_PATH_ENV,
    READ_PATHS,
    LogEntry,
    ReadPath,
    ReplicaInfo,
    Reply,
    Request,
    Snapshot,
)
from tropic.ha.log import TRANSIENT, LogTruncated, RequestLog
from tropic.ha.program import Program, ProgramDied
from tropic.store.zkclient import ZooKeeperUnavailable, open_client

__all__ = ["Replica", "main"]

# How long a replica waits for its own append to come back through the log before answering an error
# (the client has given up long before; this only bounds a handler thread's life).
APPLY_WAIT_S = 10.0
# The replica node is rewritten at most this often while applying (its applied index is advisory).
INFO_EVERY_S = 0.2
# A replica starts serving once a pass over the log leaves at most this many new entries behind it.
CAUGHT_UP_LAG = 50
BATCH = 500
RESERVED = "__tropic__"
# The read path when --read-path is not given (the environment can choose it for every replica a
# controller starts: the job driver passes no option of its own).
DEFAULT_READ_PATH: ReadPath = "log"  # strictly linearizable (the guarantee); sync is opt-in


# Client sessions kept in the replicated state (and snapshots): the clients that applied a request most
# recently. Eviction follows the log order, so every replica evicts the same sessions; a client evicted
# (10,000 others applied requests since its last) would have a late retry applied again.
MAX_SESSIONS = 10_000


def _say(replica: str, message: str) -> None:
    print(f"tropic-ha replica {replica}: {message}", file=sys.stderr, flush=True)


class Replica:
    """One replica's state machine around its program; see the module docstring."""

    def __init__(
        self,
        zk: KazooClient,
        job: str,
        replica: str,
        program: Program,
        *,
        host: str = "",
        snapshot_every: int = 500,
        read_path: ReadPath = DEFAULT_READ_PATH,
    ) -> None:
        if read_path not in READ_PATHS:
            raise TropicError(f"unknown read path {read_path!r}: it must be one of {', '.join(READ_PATHS)}")
        self.log = RequestLog(zk, job)
        self.read_path: ReadPath = read_path
        self.zk = zk
        self.job = job
        self.name = replica
        self.program = program
        self.host = host
        self.snapshot_every = snapshot_every
        self.address = ""
        self.applied = -1
        # The child counter of the newest listing of the log applied whole: the state includes every
        # entry the log held whenever its counter was at most this (see _read_synced).
        self.listed = 0
        self.reads_waiting = 0  # sync-path reads waiting for the apply loop (for tests and views)
        self.sessions: dict[str, tuple[int, Any]] = {}
        self.serving = False
        self.stop = threading.Event()
        self.failure: str | None = None
        self.cond = threading.Condition()
        self._changed = threading.Event()  # the log or the session changed
        self._wanted: dict[tuple[str, int], int] = {}
        self._answers: dict[tuple[str, int], tuple[int, Any, bool]] = {}
        self._since_snapshot = 0
        self._writer: threading.Thread | None = None  # saves snapshots off the apply loop (once running)
        self._unsaved: Snapshot | None = None
        self._save_soon = threading.Event()
        self._info_at = 0.0
        self._shown = -1  # the applied index the replica node shows
        self._reregister = False
        zk.add_listener(self._on_state)

    # --- ZooKeeper events (kazoo's thread: never block) --------------------------------------------
    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._reregister = True  # the session, and its ephemeral node, are gone
        self._changed.set()

    def _on_log(self, _event: WatchedEvent) -> None:
        self._changed.set()

    def info(self) -> ReplicaInfo:
        return ReplicaInfo(
            replica=self.name,
            address=self.address,
            applied=self.applied,
            host=self.host,
            pid=os.getpid(),
            state="serving" if self.serving else "catching-up",
        )

    # --- catching up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Register, restore the newest usable snapshot; the apply loop then catches up from the log."""
        self.log.ensure()
        self.log.register(self.info())  # before choosing a snapshot: truncation now waits for us
        self._restore()

    def _restore(self) -> None:
        marker = self.log.truncated()
        snapshot = self.log.newest_usable_snapshot() if self.program.supports_snapshots else None
        if snapshot is None:
            if marker > 0 and self.applied < marker - 1:
                raise TropicError(
                    f"the log of HA job {self.job} was truncated below index {marker} and no snapshot "
                    "from which it can be followed is left"
                    + ("" if self.program.supports_snapshots else " (the program takes no snapshots)")
                )
            _say(self.name, f"no snapshot: applying the log from index {self.applied + 1}")
            return
        if snapshot.applied <= self.applied:
            return
        self.program.restore(snapshot.state)
        with self.cond:
            self.sessions = dict(snapshot.sessions)
            self.applied = snapshot.applied  # newer: it holds every entry of the listing ``listed`` too
        _say(self.name, f"restored the snapshot at index {snapshot.applied}; catching up from the log")
        own = self.log.snapshot_applied(self.name)
        if own is None or own < snapshot.applied:  # ours too, so that truncation need not wait for us
            self.log.write_snapshot(self.name, snapshot)

    def run(self) -> None:
        """The apply loop (its own thread): follow the log until stopped."""
        self._writer = threading.Thread(target=self._write_snapshots, name="ha-snapshots", daemon=True)
        self._writer.start()
        transient = (ZooKeeperUnavailable, *TRANSIENT, self.zk.handler.timeout_exception)
        try:
            while not self.stop.is_set():
                self._changed.clear()
                try:
                    if self._reregister and self.zk.connected:
                        _say(self.name, "ZooKeeper session lost: registering again")
                        self.log.register(self.info())
                        self._reregister = False
                        self._restore()  # truncation may have passed us meanwhile
                    behind = self.apply_pending()
                except LogTruncated as exc:
                    _say(self.name, f"{exc}: restoring a newer snapshot")
                    self._restore()
                    continue
                except transient as exc:
                    # ZooKeeper is failing over or lost its quorum: kazoo reconnects; try again soon
                    _say(self.name, f"waiting for ZooKeeper ({type(exc).__name__}: {exc})")
                    self._changed.wait(0.2)
                    continue
                if not self.serving and behind <= CAUGHT_UP_LAG:
                    self.serving = True
                    self._publish(force=True)
                    _say(
                        self.name,
                        f"caught up at index {self.applied}: serving at {self.address} "
                        f"(read path: {self.read_path})",
                    )
                if behind == 0:
                    self._publish()
                    # the watch wakes us (the timeout is a safety net), or the rate limit of the
                    # replica node has passed and the index it shows is out of date
                    self._changed.wait(INFO_EVERY_S if self._shown != self.applied else 1.0)
        except ProgramDied as exc:
            self.fail(str(exc))
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")

    def fail(self, why: str) -> None:
        if not self.stop.is_set():
            self.failure = why
            self.stop.set()
        with self.cond:
            self.cond.notify_all()

    def apply_pending(self) -> int:
        """Apply what the log holds above ``applied``; return how many entries were new. Once the whole
        listing is applied, ``listed`` moves up to its child counter."""
        indices, counter = self.log.listing(watch=self._on_log)
        new = [i for i in indices if i > self.applied]
        # Indices have gaps, so a missing entry shows only through the marker, which truncation moves
        # before it deletes (read after the listing, it covers every deletion the listing saw; checked
        # even when nothing is new, since ``listed`` then claims the entries deleted before the listing).
        marker = self.log.truncated_async()
        for start in range(0, len(new), BATCH):
            batch = self.log.read(new[start : start + BATCH])
            if marker is not None:
                self._check_marker(marker)
                marker = None
            for index, entry in batch:
                self._apply(index, entry)
                if self.stop.is_set():
                    return len(new)
            self._publish()
        if marker is not None:
            self._check_marker(marker)
        with self.cond:
            if counter > self.listed:
                self.listed = counter
                self.cond.notify_all()
        return len(new)

    def _check_marker(self, marker: Any) -> None:
        lowest = int(marker.get(timeout=self.log.timeout))
        if lowest - 1 > self.applied:
            raise LogTruncated(f"the log was truncated past index {self.applied}", marker=lowest)

    def _apply(self, index: int, entry: LogEntry) -> None:
        key = (entry.client, entry.seq)
        with self.cond:
            last = self.sessions.get(entry.client)
        duplicate = bool(entry.client) and last is not None and last[0] >= entry.seq
        if duplicate:
            assert last is not None
            stale = last[0] > entry.seq
            reply: Any = None if stale else last[1]
        else:
            stale = False
            if RESERVED in entry.op:
                reply = {"error": f"{RESERVED!r} is reserved for the replica wrapper"}
            else:
                reply = self.program.ask(entry.op)
        with self.cond:
            if entry.client and not duplicate:
                self.sessions.pop(entry.client, None)  # most recently applied last: eviction order
                self.sessions[entry.client] = (entry.seq, reply)
                while len(self.sessions) > MAX_SESSIONS:  # the same log gives the same order everywhere
                    del self.sessions[next(iter(self.sessions))]
            self.applied = index
            if key in self._wanted:
                self._answers[key] = (index, reply, stale)
            self.cond.notify_all()
        if not duplicate:
            self._since_snapshot += 1
            if self._since_snapshot >= self.snapshot_every:
                self._snapshot()

    def _snapshot(self) -> None:
        self._since_snapshot = 0
        if not self.program.supports_snapshots:
            return
        state = self.program.snapshot()
        with self.cond:
            snapshot = Snapshot(applied=self.applied, state=state, sessions=dict(self.sessions))
        if self._writer is None:
            self._save(snapshot)
        else:  # the writer saves it (a newer one replaces one it has not started): applying goes on
            with self.cond:
                self._unsaved = snapshot
            self._save_soon.set()

    def _save(self, snapshot: Snapshot) -> None:
        try:
            self.log.write_snapshot(self.name, snapshot)
            self.log.truncate()
        except (ZooKeeperUnavailable, *TRANSIENT, self.zk.handler.timeout_exception) as exc:
            _say(self.name, f"snapshot at index {snapshot.applied} not saved: {exc}")

    def _write_snapshots(self) -> None:
        while not self.stop.is_set():
            self._save_soon.wait(1.0)
            self._save_soon.clear()
            with self.cond:
                snapshot, self._unsaved = self._unsaved, None
            if snapshot is not None:
                self._save(snapshot)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._info_at >= INFO_EVERY_S:
            self._info_at = now
            self._shown = self.applied
            self.log.update(self.info())

    # --- serving -----------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        """Answer one client request (called from the connection threads)."""

        def refuse(error: str) -> Reply:
            return Reply(client=request.client, seq=request.seq, ok=False, error=error)

        if self.stop.is_set():
            return refuse("stopping")
        if not self.serving:
            return refuse("catching up")
        if RESERVED in request.op:
            return refuse(f"{RESERVED!r} is reserved for the replica wrapper")
        if request.consistency == "local":
            try:
                answer = self.program.ask(request.op)
            except ProgramDied as exc:
                self.fail(str(exc))
                return refuse("stopping")
            return Reply(client=request.client, seq=request.seq, ok=True, reply=answer, index=-1)
        key = (request.client, request.seq)
        with self.cond:
            last = self.sessions.get(request.client)
            if last is not None and last[0] == request.seq:
                return Reply(client=request.client, seq=request.seq, ok=True, reply=last[1])
            if last is not None and last[0] > request.seq:
                return refuse(f"stale request: client {request.client} is already at seq {last[0]}")
            if request.read and self.read_path == "sync":
                synced = True
            else:
                synced = False
                self._wanted[key] = self._wanted.get(key, 0) + 1
        if synced:
            return self._read_synced(request)
        try:
            try:
                self.log.append(LogEntry(request.client, request.seq, request.op), timeout=APPLY_WAIT_S / 2)
            except ZooKeeperUnavailable as exc:
                return refuse(f"cannot append to the log: {exc}")
            with self.cond:
                self.cond.wait_for(lambda: key in self._answers or self.stop.is_set(), timeout=APPLY_WAIT_S)
                answer = self._answers.get(key)
            if answer is None:
                return refuse("stopping" if self.stop.is_set() else "not applied in time")
            index, reply, stale = answer
            if stale:
                return refuse(f"stale request: client {request.client} has moved past seq {request.seq}")
            return Reply(client=request.client, seq=request.seq, ok=True, reply=reply, index=index)
        finally:
            with self.cond:
                self._wanted[key] -= 1
                if not self._wanted[key]:
                    del self._wanted[key]
                    self._answers.pop(key, None)

    def _read_synced(self, request: Request) -> Reply:
        """A linearizable read without a ZooKeeper write: sync, read the log's child counter (the log's
        tail as of now), wait until this replica has applied a listing of the log whose counter is at
        least that, answer from the local state.

        Why it is enough: every write acknowledged before the read began is committed, so the server
        this replica reads from holds it once the sync returns, in the log state of that counter. The
        counter (``cversion``) grows with every child created, so a listing with a counter at least as
        high was read from that state or a later one: it holds the write, unless truncation deleted it
        meanwhile, and truncation deletes only entries below the snapshot of every live replica (this
        one's included: it has applied them) and moves the marker first, which ``apply_pending`` checks
        (a replica passed by truncation restores a newer snapshot). Entries applied meanwhile are writes
        concurrent with the read, which it may see or not."""

        def refuse(error: str) -> Reply:
            return Reply(client=request.client, seq=request.seq, ok=False, error=error)

        try:
            counter = self.log.synced_counter(timeout=APPLY_WAIT_S / 2)
        except ZooKeeperUnavailable as exc:
            return refuse(f"cannot sync with the log: {exc}")
        with self.cond:
            if self.listed < counter:
                self._changed.set()  # the log's watch wakes the apply loop too; this is only quicker
                self.reads_waiting += 1
                try:
                    self.cond.wait_for(
                        lambda: self.listed >= counter or self.stop.is_set(), timeout=APPLY_WAIT_S
                    )
                finally:
                    self.reads_waiting -= 1
            if self.stop.is_set():
                return refuse("stopping")
            if self.listed < counter:
                return refuse(f"not applied in time (log counter {self.listed} applied, {counter} synced)")
        try:
            answer = self.program.ask(request.op)
        except ProgramDied as exc:
            self.fail(str(exc))
            return refuse("stopping")
        with self.cond:
            index = self.applied  # at least: the state may be newer still
        return Reply(client=request.client, seq=request.seq, ok=True, reply=answer, index=index)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        replica = self.server.replica
        for line in self.rfile:
            if not line.strip():
                continue
            try:
                request = decode_request(line)
            except WireError as exc:
                reply = Reply(client="", seq=-1, ok=False, error=f"malformed request: {exc}")
            else:
                reply = replica.handle(request)
            try:
                self.wfile.write(encode(reply) + b"\n")
                self.wfile.flush()
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], replica: Replica) -> None:
        self.replica = replica
        super().__init__(address, _Handler)


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tropic.ha.replica",
        description=(
            "Run PROGRAM as one replica of a highly available job. PROGRAM is any deterministic program "
            "that reads one JSON request per line on stdin and writes one JSON reply per line on stdout. "
            "The wrapper orders every write and linearizable read through the job's request log in "
            "ZooKeeper, applies the log in order, answers clients on --listen (newline-delimited JSON "
            "over TCP), snapshots the program every --snapshot-every entries when it answers "
            '{"__tropic__": "snapshot"}, and truncates the log below the snapshots of the live replicas. '
            "It exits 0 on SIGTERM, and non-zero (with the reason on stderr) when the program exits or "
            "ZooKeeper cannot be reached."
        ),
        epilog="example: python -m tropic.ha.replica --zk zk://127.0.0.1:2181/tropic --job kv "
        "--replica kv-1 -- python3 examples/ha/kv.py",
    )
    parser.add_argument("--zk", required=True, metavar="ZK_URI", help="zk://host:port[,...]/chroot")
    parser.add_argument("--job", required=True, help="the job's name (its nodes are under /ha/JOB)")
    parser.add_argument("--replica", required=True, metavar="ID", help="this replica's unique name")
    parser.add_argument("--host", default="", metavar="HOSTPATH", help="the model's host it runs on")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="client wire address")
    parser.add_argument("--snapshot-every", type=int, default=500, metavar="N", help="entries per snapshot")
    parser.add_argument(
        "--session-timeout", type=float, default=4.0, metavar="S", help="ZooKeeper session timeout (s)"
    )
    default_path = os.environ.get(READ_PATH_ENV) or DEFAULT_READ_PATH
    parser.add_argument(
        "--read-path",
        choices=READ_PATHS,
        default=default_path,
        help="how a linearizable read (a request marked 'read') is answered: 'log' appends it like a write; "
        "'sync' syncs with ZooKeeper, waits until the log's tail is applied and answers locally (no "
        f"ZooKeeper write). Default: ${READ_PATH_ENV} if set, else {DEFAULT_READ_PATH}",
    )
    if "--" in argv:
        cut = argv.index("--")
        own, program = argv[:cut], argv[cut + 1 :]
    else:
        own, program = argv, []
    args = parser.parse_args(own)
    if not program:
        parser.error("no program given: write it after '--', e.g. -- python3 examples/ha/kv.py")
    if args.read_path not in READ_PATHS:
        parser.error(f"${READ_PATH_ENV} must be one of {', '.join(READ_PATHS)}, not {args.read_path!r}")
    if args.snapshot_every < 1:
        parser.error(f"--snapshot-every must be at least 1, not {args.snapshot_every}")
    _host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        parser.error(f"--listen must be HOST:PORT, not {args.listen!r}")
    return args, program


def main(argv: list[str] | None = None) -> int:
    args, command = _parse(sys.argv[1:] if argv is None else argv)
    name = args.replica
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        program = Program(command)
    except ProgramDied as exc:
        _say(name, f"{exc}; not serving")
        return 3
    try:
        program.probe()
    except ProgramDied as exc:  # it exited at once, or does not speak the protocol
        _say(name, f"{exc}; not serving")
        program.stop()
        return 3
    zk: KazooClient | None = None
    server: _Server | None = None
    try:
        zk = open_client(args.zk, connect_timeout=20.0, session_timeout=args.session_timeout)
        replica = Replica(
            zk,
            args.job,
            name,
            program,
            host=args.host,
            snapshot_every=args.snapshot_every,
            read_path=args.read_path,
        )
        host, _, port = args.listen.rpartition(":")
        server = _Server((host, int(port)), replica)
        bound = server.socket.getsockname()
        replica.address = f"{bound[0]}:{bound[1]}"
        threading.Thread(target=server.serve_forever, name="ha-wire", daemon=True).start()
        replica.start()
        threading.Thread(target=replica.run, name="ha-apply", daemon=True).start()

        def watch_program() -> None:
            code = program.wait()
            replica.fail(f"program {command[0]!r} exited with code {code}")
            stopping.set()

        threading.Thread(target=watch_program, name="ha-program", daemon=True).start()

        def watch_replica() -> None:
            replica.stop.wait()
            stopping.set()

        threading.Thread(target=watch_replica, name="ha-stop", daemon=True).start()
        while not stopping.wait(1.0):
            pass
        replica.stop.set()
        if replica.failure:
            _say(name, f"stopping: {replica.failure}")
            return 1
        _say(name, f"stopping at index {replica.applied}")
        return 0
    except (TropicError, OSError) as exc:
        _say(name, f"{type(exc).__name__}: {exc}")
        return 2
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if zk is not None:
            with contextlib.suppress(TropicError):
                RequestLog(zk, args.job, timeout=2.0).unregister(name)
            zk.stop()
            zk.close()
        program.stop()


if __name__ == "__main__":
    sys.exit(main())
