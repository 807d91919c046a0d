"""A real ZooKeeper ensemble on loopback, for tests, benchmarks and the commands that emulate a wide area
(`tropic sun --emulate`, `tropic ha bench`): no fakes.

Each server is a child ``java ... org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`` process
using the jars of Debian's ``zookeeper`` package (``scripts/install-zookeeper.sh``), with its own data dir
and free loopback ports. Servers are numbered from 0 (``myid`` is index + 1).

No server may outlive the Python process that started it, whatever happens to it: :meth:`stop_all` and
``close`` kill them, an ``atexit`` hook kills any left over, each runs in its own process group (so a kill
reaches the whole JVM), and ``setpriv --pdeathsig KILL`` makes the kernel kill it if Python itself dies
by a signal, even ``kill -9``. Start ensembles from the main thread: the death signal is tied to the
thread that spawned the server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "ZooKeeperEnsemble",
    "ZooKeeperHarnessError",
    "ZooKeeperInstall",
    "find_zookeeper",
    "four_letter",
    "free_ports",
]

MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
DEBIAN_JAR = Path("/usr/share/java/zookeeper.jar")  # its manifest's Class-Path lists the dependencies
# An slf4j backend so that servers log to their server.log; without one slf4j drops every message.
DEBIAN_LOGGER_JAR = Path("/usr/share/java/slf4j-simple.jar")
SERVING_MODES = frozenset({"leader", "follower", "standalone"})


class ZooKeeperHarnessError(RuntimeError):
    """The test ensemble could not be started or did not reach the wanted state in time."""


@dataclass(frozen=True)
class ZooKeeperInstall:
    java: str
    classpath: str


def find_zookeeper() -> ZooKeeperInstall | None:
    """Locate java and the ZooKeeper classpath; ``None`` when ZooKeeper is not installed.

    ``TROPIC_ZK_CLASSPATH`` and ``TROPIC_JAVA`` override the Debian locations.
    """
    java = os.environ.get("TROPIC_JAVA") or shutil.which("java")
    classpath = os.environ.get("TROPIC_ZK_CLASSPATH")
    if classpath is None and DEBIAN_JAR.is_file():
        jars = [DEBIAN_JAR, *([DEBIAN_LOGGER_JAR] if DEBIAN_LOGGER_JAR.is_file() else [])]
        classpath = os.pathsep.join(str(j) for j in jars)
    if not java or not classpath:
        return None
    return ZooKeeperInstall(java=java, classpath=classpath)


# --- processes that must not outlive us ------------------------------------------------------------
_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_TEMP_DIRS: set[Path] = set()  # made by ensembles that were not given a base_dir


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own group: pgid == pid (start_new_session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    _LIVE.pop(proc.pid, None)


def _wait_exec(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    # setpriv arms the death signal and then execs java; a parent that died in between would leave an
    # unarmed orphan, so do not hand the server out before the exec.
    setpriv = shutil.which("setpriv")
    deadline = time.monotonic() + timeout
    while setpriv and proc.poll() is None and time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/exe") != os.path.realpath(setpriv):
                return
        except OSError:
            return  # no /proc: nothing to wait on
        time.sleep(0.002)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        _kill_group(proc)
    for path in list(_TEMP_DIRS):
        shutil.rmtree(path, ignore_errors=True)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago (all held open together, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def four_letter(port: int, command: str = "srvr", *, host: str = "127.0.0.1", timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command; returns the reply, ``""`` when nobody answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(command.encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class _Server:
    myid: int
    client_port: int
    peer_port: int
    election_port: int
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "zoo.cfg"

    @property
    def log(self) -> Path:
        return self.home / "server.log"


class ZooKeeperEnsemble:
    """``size`` ZooKeeper servers on 127.0.0.1, each its own JVM; see the module docstring.

    ``base_dir`` holds one directory per server (config, data, ``server.log``); when not given a temporary
    one is made and removed by :meth:`close`. ``force_sync=False`` skips fsync of the transaction log
    (faster, not crash-safe across a whole-ensemble power loss; killing processes is still safe).
    """

    def __init__(
        self,
        base_dir: Path | str | None = None,
        *,
        size: int = 3,
        install: ZooKeeperInstall | None = None,
        heap_mb: int = 256,
        tick_ms: int = 500,
        force_sync: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("an ensemble needs at least one server")
        found = install or find_zookeeper()
        if found is None:
            raise ZooKeeperHarnessError("ZooKeeper is not installed: run scripts/install-zookeeper.sh")
        self.install = found
        self._own_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="tropic-zk-") if base_dir is None else base_dir)
        if self._own_dir:
            _TEMP_DIRS.add(self.base_dir)
        self.heap_mb = heap_mb
        self.tick_ms = tick_ms
        self.force_sync = force_sync
        ports = free_ports(3 * size)
        self.servers = [
            _Server(i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2], self.base_dir / f"zk{i + 1}")
            for i in range(size)
        ]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        # server index -> peer index -> (quorum port, election port) it dials instead of the peer's own
        self._peer_routes: dict[int, dict[int, tuple[int, int]]] = {}
        for index in range(size):
            self._write_config(index)

    # --- addresses ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.servers)

    @property
    def connect_string(self) -> str:
        return ",".join(f"127.0.0.1:{s.client_port}" for s in self.servers)

    def uri(self, chroot: str = "/") -> str:
        """A ``zk://`` URI for tropic naming every server and ``chroot``."""
        return f"zk://{self.connect_string}{chroot if chroot.startswith('/') else '/' + chroot}"

    def client_port(self, index: int) -> int:
        return self.servers[index].client_port

    def peer_ports(self, index: int) -> tuple[int, int]:
        """``(quorum port, election port)`` server ``index`` listens on."""
        server = self.servers[index]
        return server.peer_port, server.election_port

    def route_peers(self, routes: dict[int, dict[int, tuple[int, int]]]) -> None:
        """Make server ``i`` dial peer ``j`` at ``routes[i][j] = (quorum port, election port)`` on
        127.0.0.1 instead of ``j``'s own ports (a relay, e.g. the delay proxy of an emulated wide area).

        Rewrites the configuration files; takes effect when a server (re)starts. Each server still
        listens on its own ports; pairs not named keep the direct address. Quorum traffic (a follower to
        its leader) always takes the route; leader election may answer on the peer's own address
        (ZooKeeper reconnects to the address a lower-numbered peer advertises).
        """
        for i, peers in routes.items():
            if not 0 <= i < self.size or any(not 0 <= j < self.size or j == i for j in peers):
                raise ValueError(f"route_peers: bad server index in {i}: {sorted(peers)}")
        self._peer_routes = {i: dict(peers) for i, peers in routes.items()}
        for index in range(self.size):
            self._write_config(index)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start_all(self, timeout: float = 60.0) -> None:
        """Start every server that is not running and wait until all of them serve."""
        for index in range(self.size):
            if not self.running(index):
                self.start(index, wait=False)
        self.wait_serving(timeout=timeout)

    def start(self, index: int, *, wait: bool = False, timeout: float = 60.0) -> None:
        """Start server ``index`` (no-op when running); with ``wait``, until it serves clients."""
        if not self.running(index):
            server = self.servers[index]
            log = server.log.open("ab")
            try:
                proc = subprocess.Popen(
                    self._command(index),
                    cwd=server.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                log.close()  # the child has its own descriptor
            self._procs[index] = proc
            _LIVE[proc.pid] = proc
            _wait_exec(proc)
        if wait:
            self.wait_serving([index], timeout=timeout)

    def kill(self, index: int) -> None:
        """SIGKILL server ``index`` (a crash: no clean shutdown) and reap it."""
        proc = self._procs.pop(index, None)
        if proc is not None:
            _kill_group(proc)

    def pause(self, index: int) -> None:
        """SIGSTOP server ``index`` (every thread of its JVM): it neither runs nor answers until
        :meth:`resume`; its connections stay open (a frozen VM, e.g. a live migration's stop-and-copy)."""
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        """SIGCONT server ``index`` after :meth:`pause`."""
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, sig: signal.Signals) -> None:
        proc = self._procs.get(index)
        if proc is None or proc.poll() is not None:
            raise ZooKeeperHarnessError(f"zk{index + 1} is not running")
        os.killpg(proc.pid, sig)

    def stop_all(self) -> None:
        for index in range(self.size):
            self.kill(index)

    def restore(self, timeout: float = 60.0) -> None:
        """Bring the ensemble back to every server running and serving (after kill tests)."""
        self.start_all(timeout=timeout)

    def close(self) -> None:
        self.stop_all()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _TEMP_DIRS.discard(self.base_dir)

    def __enter__(self) -> ZooKeeperEnsemble:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- state -------------------------------------------------------------------------------------
    def running(self, index: int) -> bool:
        proc = self._procs.get(index)
        return proc is not None and proc.poll() is None

    def pid(self, index: int) -> int | None:
        proc = self._procs.get(index)
        return None if proc is None else proc.pid

    def mode(self, index: int) -> str | None:
        """``leader``/``follower`` when serving; ``None`` when down or not serving (no quorum)."""
        if not self.running(index):
            return None
        for line in four_letter(self.servers[index].client_port, "srvr").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def leader(self) -> int | None:
        return next((i for i in range(self.size) if self.mode(i) == "leader"), None)

    def describe(self) -> str:
        return ", ".join(
            f"zk{s.myid}@{s.client_port}={'down' if not self.running(i) else self.mode(i) or 'not serving'}"
            for i, s in enumerate(self.servers)
        )

    def wait_serving(self, indices: Iterable[int] | None = None, *, timeout: float = 60.0) -> None:
        """Wait until every server in ``indices`` (default: all running ones) serves with a quorum."""
        wanted = list(range(self.size) if indices is None else indices)
        deadline = time.monotonic() + timeout
        while True:
            for index in wanted:
                proc = self._procs.get(index)
                if proc is None:
                    raise ZooKeeperHarnessError(f"zk{index + 1} is not started")
                if proc.poll() is not None:
                    tail = self.log_tail(index)
                    raise ZooKeeperHarnessError(f"zk{index + 1} exited with {proc.returncode}; log:\n{tail}")
            modes = [self.mode(i) for i in wanted]
            if all(m in SERVING_MODES for m in modes):
                return
            if time.monotonic() > deadline:
                raise ZooKeeperHarnessError(
                    f"ZooKeeper did not serve within {timeout:g} s: {self.describe()}\n"
                    + "\n".join(f"--- zk{i + 1}:\n{self.log_tail(i)}" for i in wanted)
                )
            time.sleep(0.1)

    def wait_not_serving(self, index: int, *, timeout: float = 30.0) -> None:
        """Wait until server ``index`` stops serving (e.g. it noticed it lost the quorum)."""
        deadline = time.monotonic() + timeout
        while self.mode(index) in SERVING_MODES:
            if time.monotonic() > deadline:
                raise ZooKeeperHarnessError(f"zk{index + 1} still serves after {timeout:g} s")
            time.sleep(0.1)

    def log_tail(self, index: int, lines: int = 30) -> str:
        try:
            return "\n".join(self.servers[index].log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def processes(self) -> Iterator[tuple[int, int]]:
        """``(index, pid)`` of every running server."""
        for index in range(self.size):
            pid = self.pid(index)
            if pid is not None and self.running(index):
                yield index, pid

    # --- files -------------------------------------------------------------------------------------
    def _write_config(self, index: int) -> None:
        server = self.servers[index]
        data = server.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{server.myid}\n")
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=5",
            f"dataDir={data}",
            "clientPortAddress=127.0.0.1",
            f"clientPort={server.client_port}",
            "maxClientCnxns=0",
            # Let clients ask for up to a minute (ZooKeeper's default cap is 20 ticks).
            f"minSessionTimeout={2 * self.tick_ms}",
            "maxSessionTimeout=60000",
            "admin.enableServer=false",
            "standaloneEnabled=false",
            "reconfigEnabled=false",
            "preAllocSize=4096",  # KiB of transaction log preallocated (default 64 MiB per server)
            f"forceSync={'yes' if self.force_sync else 'no'}",
            *(self._server_line(index, peer) for peer in range(self.size)),
        ]
        server.config.write_text("\n".join(lines) + "\n")

    def _server_line(self, index: int, peer: int) -> str:
        s = self.servers[peer]
        quorum, election = self._peer_routes.get(index, {}).get(peer, (s.peer_port, s.election_port))
        return f"server.{s.myid}=127.0.0.1:{quorum}:{election}"

    def _command(self, index: int) -> list[str]:
        server = self.servers[index]
        java = [
            self.install.java,
            f"-Xmx{self.heap_mb}m",
            "-Xms32m",
            "-XX:+UseSerialGC",  # two cores: no parallel GC threads fighting the servers
            "-XX:-UsePerfData",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.4lw.commands.whitelist=srvr,ruok,mntr,stat,conf",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            self.install.classpath,
            MAIN_CLASS,
            str(server.config),
        ]
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "KILL", *java] if setpriv else java
