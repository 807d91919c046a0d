"""The sim host's replica processes: each replica of a replicated job runs as a local process, standing in
for the VM that would run it on a real host.

A replica's process is the replica wrapper (``python -m tropic.ha.replica``, :mod:`tropic.ha`) around the
job's program, started in a session of its own (so the wrapper and the program it runs are one process
group, killed together) with its output in ``<run_dir>/<job>/<replica>.log``. It is not a child that
dies with the controller: a controller killed or replaced leaves its replicas serving, as a real host's
VMs would be.

Every started process is also written to ``<run_dir>/<job>/<replica>.json`` (pid, the kernel's start
time of that pid, host, argv), so any process sharing the run directory (the sim of another worker or
controller in distributed mode) can tell whether it still lives, and stop it, without ever signalling a
recycled pid: a pid counts only while its start time is the recorded one.

A simulated host that fails (:meth:`SimProcesses.fail_host`, the sim's ``fail_host``) kills every
replica on it at once (SIGKILL, as a power cut would) and refuses to start one until it is restored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tropic.drivers.base import Args
from tropic.errors import DeviceFault, DriverError
from tropic.model import Value

Launcher = Callable[[Mapping[str, Value]], list[str]]
HALT_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long


def replica_command(args: Mapping[str, Value]) -> list[str]:
    """The replica wrapper's command line for a ``run_replica`` step's arguments (the contract's)."""
    program = args.get("program")
    argv = [str(a) for a in program] if isinstance(program, list) else []
    return [
        sys.executable,
        "-m",
        "tropic.ha.replica",
        "--zk",
        str(args["zk"]),
        "--job",
        str(args["job"]),
        "--replica",
        str(args["replica"]),
        "--host",
        str(args["host"]),
        "--listen",
        "127.0.0.1:0",
        "--",
        *argv,
    ]


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class SimProcesses:
    """The replica processes of one sim (see the module docstring)."""

    def __init__(self, run_dir: Path | None = None, launcher: Launcher = replica_command) -> None:
        self._run_dir = run_dir
        self.launcher = launcher
        self.down: set[str] = set()  # hosts that failed (not durable: a restart of the sim restores them)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # replica path -> the process we started
        self._lock = threading.Lock()

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="tropic-replicas-"))
        return self._run_dir

    def _file(self, replica: str, suffix: str) -> Path:
        _, _, job, name = replica.split("/", 3)  # /jobs/<job>/<replica>
        return self.run_dir / job / f"{name}{suffix}"

    def _record(self, replica: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._file(replica, ".json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def _alive(self, rec: Mapping[str, Any]) -> bool:
        return _start_time(int(rec["pid"])) == rec.get("start_time")

    # --- the device actions ------------------------------------------------------------------------------
    def run(self, replica: str, args: Mapping[str, Value]) -> None:
        """Start the replica's process on its host; idempotent (a live one is left as it is)."""
        host = str(args["host"])
        if host in self.down:
            raise DeviceFault(f"sim: host {host} is powered off: cannot start {replica}", path=replica)
        with self._lock:
            rec = self._record(replica)
            if rec is not None and self._alive(rec):
                return
            argv = self.launcher(args)
            log = self._file(replica, ".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as out:
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as e:
                    raise DriverError(f"sim: cannot start {replica} ({argv[0]}): {e}", path=replica) from e
            self._procs[replica] = proc
            record = {
                "pid": proc.pid,
                "start_time": _start_time(proc.pid),
                "host": host,
                "argv": argv,
                "started": time.time(),
            }
            tmp = self._file(replica, ".json.tmp")
            tmp.write_text(json.dumps(record))
            tmp.replace(self._file(replica, ".json"))

    def halt(self, replica: str, args: Mapping[str, Value] | None = None) -> None:
        """Stop the replica's process (SIGTERM, then SIGKILL); idempotent."""
        with self._lock:
            rec = self._record(replica)
            proc = self._procs.pop(replica, None)
            if rec is not None and self._alive(rec):
                self._signal(int(rec["pid"]), signal.SIGTERM)
                deadline = time.monotonic() + HALT_GRACE_S
                while self._alive(rec) and time.monotonic() < deadline:
                    if proc is not None:
                        proc.poll()
                    time.sleep(0.02)
                if self._alive(rec):
                    self._signal(int(rec["pid"]), signal.SIGKILL)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=HALT_GRACE_S)
            self._file(replica, ".json").unlink(missing_ok=True)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the wrapper and its program: one session, one group

    # --- out-of-band events --------------------------------------------------------------------------------
    def kill(self, replica: str) -> None:
        """The replica's process dies (SIGKILL), behind the controller's back."""
        with self._lock:
            rec = self._record(replica)
            if rec is not None and self._alive(rec):
                self._signal(int(rec["pid"]), signal.SIGKILL)
            proc = self._procs.get(replica)
            if proc is not None:
                proc.wait(timeout=HALT_GRACE_S)

    def fail_host(self, host: str) -> list[str]:
        """The host loses power: every replica process on it is killed; it starts none until
        :meth:`restore_host`. Returns the replicas killed."""
        self.down.add(host)
        killed = [p for p, s in self.status().items() if s["host"] == host and s["alive"]]
        for p in killed:
            self.kill(p)
        return killed

    def restore_host(self, host: str) -> None:
        self.down.discard(host)

    def kill_all(self) -> None:
        """Kill every replica process this sim knows (tests' and tools' clean-up)."""
        for p in self.status():
            self.kill(p)

    # --- reading -----------------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Value]]:
        """Every replica process recorded in the run directory, per replica path (see
        :meth:`tropic.drivers.base.ReplicaDriver.replica_processes`)."""
        out: dict[str, dict[str, Value]] = {}
        if self._run_dir is None or not self._run_dir.is_dir():
            return out
        for f in sorted(self._run_dir.glob("*/*.json")):
            replica = f"/jobs/{f.parent.name}/{f.stem}"
            rec = self._record(replica)
            if rec is None:
                continue
            proc = self._procs.get(replica)
            code = proc.poll() if proc is not None else None
            alive = self._alive(rec) and code is None
            out[replica] = {
                "host": str(rec["host"]),
                "pid": int(rec["pid"]),
                "alive": alive,
                "exit_code": code,
                "host_down": str(rec["host"]) in self.down,
                "started": float(rec["started"]),
                "log": str(self._file(replica, ".log")),
            }
        return out


class SimReplicas:
    """The replica actions of :class:`~tropic.drivers.sim.SimDriver` (a base of it), on its
    :class:`SimProcesses`."""

    processes: SimProcesses

    def runs_replicas_on(self, host: str) -> bool:
        return True  # every host it drives (a router asks the backend of the host)

    def run_replica(self, replica: str, args: Args) -> None:
        self.processes.run(replica, args)

    def halt_replica(self, replica: str, args: Args) -> None:
        self.processes.halt(replica, args)

    def replica_processes(self) -> dict[str, dict[str, Value]]:
        return self.processes.status()

    def fail_host(self, host: str) -> list[str]:
        """Out of band: the host loses power, every replica process on it dies, and it starts none
        until :meth:`restore_host` (its VM records stay as they are). Returns the replicas killed."""
        return self.processes.fail_host(host)

    def restore_host(self, host: str) -> None:
        self.processes.restore_host(host)

    def host_alive(self, host: str) -> bool | None:
        """False while ``host`` is failed (:meth:`fail_host`) or powered off: it answers nothing."""
        return host not in self.processes.down

    def power_off(self, host: str, args: Args) -> None:
        """A powered-off host runs no replica process (the model refuses it while it holds VMs)."""
        self.processes.fail_host(host)

    def power_on(self, host: str, args: Args) -> None:
        self.processes.restore_host(host)
