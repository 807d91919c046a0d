"""``sim``: an in-repo simulated datacenter with its own physical state, latency and fault injection.

Its state is independent of the logical model (tests compare the two to prove consistency and the absence
of orphans). Faults are deterministic under a seed: whether a step fails depends only on the seed and the
step's identity (transaction, index, forward/undo), not on thread timing. Out-of-band events change the
devices behind the controller's back (a VM crashes, a host reboots, an admin deletes a volume, a device
stops answering) so drift detection, reload, repair and deadlines can be tested (the rules and events:
:mod:`tropic.drivers.sim_faults`).

A sim with a file has one owner, like a store: the process that opens it holds its OS lock
(:mod:`tropic.owner`) until :meth:`SimDriver.close`, and another process opening it is refused with
:class:`~tropic.errors.StoreInUse`. Distributed-mode devices (:mod:`tropic.drivers.sim_shared`) share the
lock among themselves. :func:`read_devices` reads a live file without writing it.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tropic.drivers.base import Args, Driver, Step, covers
from tropic.drivers.sim_applied import KEEP_TXNS, RELEASE_EVERY, Applied, release
from tropic.drivers.sim_faults import Fault, Hang, uniform
from tropic.drivers.sim_fleet import SimFleet
from tropic.drivers.sim_geo import SimGeo
from tropic.drivers.sim_process import SimProcesses, SimReplicas
from tropic.drivers.sim_rows import Rows
from tropic.drivers.sim_stats import SimStats
from tropic.errors import CorruptStore, DeviceFault, DeviceTimeout, DriverError
from tropic.model import Inventory
from tropic.owner import Holder, OwnerLock, acquire


class SimDriver(SimStats, SimFleet, SimReplicas, SimGeo, Driver):
    """A simulated datacenter: hosts with VMs, configs and imported volumes; SANs; routers."""

    name = "sim"
    shared_file = False  # several processes act on the devices file at once (distributed mode)

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float | Mapping[str, float] = 0.0,
        faults: list[Fault] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        holder: Holder | None = None,
    ) -> None:
        """``state_file``: keep the devices in that file, owned by this process until :meth:`close`
        (``holder`` says who it is to any process refused meanwhile)."""
        self.seed = seed
        self.latency = latency
        self.faults: list[Fault] = list(faults or [])
        self.hangs: list[Hang] = []  # not durable: a restart of the process ends every hang
        self._lock = threading.Lock()
        self.hosts: dict[str, dict[str, Any]] = {}
        self.sans: dict[str, dict[str, Any]] = {}
        self.routers: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.in_flight: dict[str, int] = {}  # path -> steps running now (for isolation tests)
        self.max_parallel = 0
        self._running = 0
        # Durable devices: every effect is written to the sim's own file before the call returns.
        self._dirty: set[str] = set()
        self._saved: dict[str, str] = {}
        self.applied: Applied = {}  # effective applications of each step (bounded: sim_applied)
        self.keep_txns = KEEP_TXNS
        self._since_release = 0
        self._db: sqlite3.Connection | None = None
        self._owner: OwnerLock | None = None
        # Replicated jobs' replicas run as local processes (their records beside the devices file).
        self.processes = SimProcesses(Path(f"{state_file}.replicas") if state_file is not None else None)
        if state_file is not None:
            self._open(Path(state_file), holder)

    # --- provisioning and inspection -----------------------------------------------------------------
    def load(self, inventory: Inventory) -> None:
        """Make the devices hold exactly ``inventory`` (e.g. a freshly built datacenter)."""
        with self._lock:
            self.hosts = {
                p: {
                    "vms": copy.deepcopy(h["vms"]),
                    "configs": set(h["configs"]),
                    "volumes": set(h["volumes"]),
                }
                for p, h in inventory["hosts"].items()
            }
            self.sans = {
                p: {"images": set(s["images"]), "volumes": copy.deepcopy(s["volumes"])}
                for p, s in inventory["storage"].items()
            }
            self.routers = copy.deepcopy(inventory["routers"])
            if self._db is not None:
                self._db.execute("DELETE FROM sim_objects")
                self._saved.clear()
                self._dirty = self._rows().keys()
                self._persist(None)

    def inventory(self) -> Inventory:
        with self._lock:
            return self._copy(lambda p: True)

    def reload(self, path: str) -> Inventory:
        """One device's (or one subtree's) state, read without copying the whole datacenter."""
        hang = self._hang_for(read=path)
        if hang is not None:
            self._block(hang, f"read of {path}", path)
        with self._lock:
            return self._copy(lambda p: covers(path, p) or covers(p, path))

    def _copy(self, keep: Callable[[str], bool]) -> Inventory:
        """The devices' state (under the lock), for the objects whose path ``keep`` accepts."""
        return {
            "hosts": {
                p: {
                    "vms": copy.deepcopy(h["vms"]),
                    "configs": sorted(h["configs"]),
                    "volumes": sorted(h["volumes"]),
                }
                for p, h in self.hosts.items()
                if keep(p)
            },
            "storage": {
                p: {"images": sorted(s["images"]), "volumes": copy.deepcopy(s["volumes"])}
                for p, s in self.sans.items()
                if keep(p)
            },
            "routers": {p: dict(r) for p, r in self.routers.items() if keep(p)},
        }

    def list_vms(self) -> list[str]:
        with self._lock:
            return sorted(f"{h}/{n}" for h, d in self.hosts.items() for n in d["vms"])

    def list_volumes(self) -> list[str]:
        with self._lock:
            return sorted(f"{s}/{n}" for s, d in self.sans.items() for n in d["volumes"])

    def list_images(self) -> list[str]:
        with self._lock:
            return sorted(f"{s}/{n}" for s, d in self.sans.items() for n in d["images"])

    def list_configs(self) -> list[str]:
        with self._lock:
            return sorted(f"{h}/{c}" for h, d in self.hosts.items() for c in d["configs"])

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        self.save_faults()
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
        self.save_faults()

    # --- out-of-band events: the devices change behind the controller's back -----------------------------
    def crash_vm(self, vm: str) -> None:
        """The VM crashes: its hypervisor now reports it stopped."""
        with self._lock:
            self._vm(vm)["state"] = "stopped"
            self._persist(None)

    def reboot_host(self, host: str) -> None:
        """The host reboots: every VM on it is stopped afterwards (none is set to start on boot)."""
        with self._lock:
            for name, spec in self._host(host)["vms"].items():
                spec["state"] = "stopped"
                self._mark(f"{host}/{name}")
            self._persist(None)

    def drop_volume(self, volume: str) -> None:
        """An administrator deletes the volume by hand (imports of it on hosts stay, dangling)."""
        san, name = volume.rsplit("/", 1)
        with self._lock:
            if self._san(san)["volumes"].pop(name, None) is None:
                raise DriverError(f"sim: no volume {volume}", path=volume)
            self._mark(volume)
            self._persist(None)

    def hang(
        self,
        path: str,
        *,
        action: str | None = None,
        undo: bool | None = None,
        times: int | None = None,
        effect: bool = False,
        timeout: float = 30.0,
    ) -> Hang:
        """The device at ``path`` stops answering (see :class:`Hang`)."""
        h = Hang(path, action, undo, times, effect, timeout)
        with self._lock:
            self.hangs.append(h)
        return h

    def release(self, hang: Hang | None = None, *, proceed: bool = True) -> None:
        """End one hang (or every hang): blocked calls go on (``proceed``) or fail without effect."""
        with self._lock:
            ended = [h for h in self.hangs if hang is None or h is hang]
            if hang is not None and hang not in ended:
                ended.append(hang)
            self.hangs = [h for h in self.hangs if h not in ended]
        for h in ended:
            h.proceed = proceed
            h.released.set()

    def _hang_for(self, step: Step | None = None, read: str | None = None) -> Hang | None:
        if not self.hangs:
            return None
        with self._lock:
            for h in self.hangs:
                if (step is not None and h.matches_step(step)) or (read is not None and h.matches_read(read)):
                    h.hung += 1
                    if h.times is not None and h.hung >= h.times:
                        self.hangs.remove(h)  # spent: later calls answer again
                    return h
        return None

    def _block(self, hang: Hang, what: str, path: str) -> None:
        """Hang: return when released to go on, raise when the device gives up (or is released to fail)."""
        hang.entered.set()
        released = hang.released.wait(hang.timeout)
        if not released:
            raise DeviceTimeout(f"sim: {what} hung and failed after {hang.timeout:g} s", path=path)
        if not hang.proceed:
            raise DeviceTimeout(f"sim: {what} hung and was aborted", path=path)

    # --- durability ------------------------------------------------------------------------------------
    def _open(self, path: Path, holder: Holder | None = None) -> None:
        if path.is_dir():
            raise CorruptStore(f"{path} is a directory, not a sim device file", path=str(path))
        # The devices' owner first (a refused opener reads nothing and changes nothing), then the file.
        owner = acquire(path, holder, what="sim devices", shared=self.shared_file, announce=False)
        try:
            db = self._connect(path)
            owner.announce()
        except BaseException:
            owner.release()
            raise
        self._owner = owner
        self._db = db
        if self._read(db):  # the old layout: rewrite it, one row per object
            with self._lock:
                self._dirty = self._rows().keys()
                self._persist(None)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        """The devices file, made if new (an empty file is new); a foreign file is refused untouched."""
        try:
            if path.exists() and path.stat().st_size > 0:
                ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    tables = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                finally:
                    ro.close()
                if "sim_objects" not in tables:
                    raise CorruptStore(
                        f"{path} is not a sim device file; refusing to use or modify it", path=str(path)
                    )
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(
                "CREATE TABLE IF NOT EXISTS sim_objects (key TEXT PRIMARY KEY, kind TEXT, value TEXT);"
                "CREATE TABLE IF NOT EXISTS sim_meta (key TEXT PRIMARY KEY, value TEXT);"
                "CREATE TABLE IF NOT EXISTS sim_applied (txn INTEGER, idx INTEGER, undo INTEGER, n INTEGER,"
                " PRIMARY KEY (txn, idx, undo));"
            )
        except sqlite3.DatabaseError as e:
            raise CorruptStore(f"{path} is not a sim device file: {e}", path=str(path)) from None
        return db

    def _rows(self) -> Rows:
        return Rows(self.hosts, self.sans, self.routers)

    def _read(self, db: sqlite3.Connection) -> bool:
        """Load every device, step count and fault rule the file holds; True if it is in the old layout."""
        rows = self._rows()
        for key, kind, value in db.execute("SELECT key, kind, value FROM sim_objects ORDER BY key"):
            rows.install(key, kind, value)
            self._saved[key] = value
        for txn, idx, undo, n in db.execute("SELECT txn, idx, undo, n FROM sim_applied"):
            self.applied[(txn, idx, bool(undo))] = n
        row = db.execute("SELECT value FROM sim_meta WHERE key='faults'").fetchone()
        if row is not None:
            self.faults = [Fault.from_dict(f) for f in json.loads(row[0])]
        self._load_overlay(db)
        return rows.legacy

    @property
    def durable(self) -> bool:
        return self._db is not None

    def save_faults(self) -> None:
        if self._db is not None:
            with self._lock:
                data = json.dumps([f.to_dict() for f in self.faults])
                self._db.execute("INSERT OR REPLACE INTO sim_meta VALUES ('faults', ?)", (data,))

    def _changes(self) -> tuple[list[tuple[str, str, str]], list[tuple[str]]]:
        """The rows to write and the keys to delete for what the last action marked (under the lock)."""
        dirty, self._dirty = self._dirty, set()
        rows = self._rows()
        changed: list[tuple[str, str, str]] = []
        gone: list[tuple[str]] = []
        for key in dirty:
            ser = rows.serialise(key)
            if ser is None:
                if self._saved.pop(key, None) is not None:
                    gone.append((key,))
            elif self._saved.get(key) != ser[1]:
                changed.append((key, ser[0], ser[1]))
                self._saved[key] = ser[1]
        return changed, gone

    def _persist(self, step: Step | None) -> None:
        """Write the objects an action changed (called under the lock). Counts effective applications."""
        changed, gone = self._changes()
        if not changed and not gone:
            return
        applied = None
        if step is not None:
            k = (step.txn, step.index, step.undo)
            self.applied[k] = n = self.applied.get(k, 0) + 1
            applied = (step.txn, step.index, int(step.undo), n)
        db = self._db
        if db is None:
            return
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO sim_objects VALUES (?, ?, ?)", changed)
        db.executemany("DELETE FROM sim_objects WHERE key=?", gone)
        if applied is not None:
            db.execute("INSERT OR REPLACE INTO sim_applied VALUES (?, ?, ?, ?)", applied)
            self._counted(db)
        db.execute("COMMIT")

    def _counted(self, db: sqlite3.Connection) -> None:
        """One more application counted (in ``db``'s write transaction): release the old ones now and
        then (see :mod:`tropic.drivers.sim_applied`)."""
        self._since_release += 1
        if self._since_release >= RELEASE_EVERY:
            self._since_release = 0
            self.applied = release(self.applied, db, self.keep_txns)

    def duplicates(self) -> list[tuple[int, int, bool]]:
        """Steps whose effect was applied more than once (a redo that was not idempotent)."""
        return sorted(k for k, n in self.applied.items() if n > 1 and not k[2])

    def close(self) -> None:
        """Close the devices file and give up its ownership."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    # --- execution -------------------------------------------------------------------------------------
    def _delay(self, action: str) -> float:
        lat = self.latency
        if isinstance(lat, Mapping):
            return float(lat.get(action, lat.get("*", 0.0)))
        return float(lat)

    def _fault_for(self, step: Step) -> Fault | None:
        if not self.faults:
            self.calls += 1  # a racy count is fine: it is for display only
            return None
        with self._lock:
            self.calls += 1
            for f in self.faults:
                if not f.matches(step):
                    continue
                f.calls += 1
                if f.times is not None and f.fired >= f.times:
                    continue
                if f.nth is not None:
                    hit = f.calls == f.nth
                else:
                    hit = f.probability >= 1.0 or uniform(self.seed, step) < f.probability
                if hit:
                    f.fired += 1
                    return f
        return None

    def prompt(self, step: Step) -> bool:
        return not self.hangs and self._delay(step.action) <= 0

    def execute(self, step: Step) -> None:
        fault = self._fault_for(step)
        hang = self._hang_for(step=step)
        with self._lock:
            self._running += 1
            self.max_parallel = max(self.max_parallel, self._running)
            self.in_flight[step.path] = self.in_flight.get(step.path, 0) + 1
        try:
            delay = self._delay(step.action)
            if delay > 0:
                time.sleep(delay)
            if hang is not None:
                if hang.effect:
                    self._apply(step)
                self._block(hang, step.describe(), step.path)
                if hang.effect:
                    return
            if fault is not None and not fault.after:
                raise DeviceFault(f"{fault.message}: {step.describe()}", path=step.path)
            self._apply(step)
            if fault is not None:
                raise DeviceFault(f"{fault.message} (after the effect): {step.describe()}", path=step.path)
        finally:
            with self._lock:
                self._running -= 1
                n = self.in_flight[step.path] - 1
                if n:
                    self.in_flight[step.path] = n
                else:
                    del self.in_flight[step.path]

    def _apply(self, step: Step) -> None:
        if step.action in _PROCESS_ACTIONS:  # a process, not device state: not under the devices' lock
            Driver.execute(self, step)
            return
        with self._lock:
            try:
                super().execute(step)
            finally:
                if self._db is not None or self._dirty:
                    self._persist(step)

    # --- device semantics (called under self._lock; idempotent) -------------------------------------
    def _host(self, host: str) -> dict[str, Any]:
        h = self.hosts.get(host)
        if h is None:
            raise DriverError(f"sim: no host {host}", path=host)
        if self._db is not None:
            self._dirty.add(host)
        return h

    def _san(self, san: str) -> dict[str, Any]:
        s = self.sans.get(san)
        if s is None:
            raise DriverError(f"sim: no storage host {san}", path=san)
        if self._db is not None:
            self._dirty.add(san)
        return s

    def _mark(self, key: str) -> None:
        """The object at ``key`` (a VM or a volume) may change: write its row at the end of the action."""
        if self._db is not None:
            self._dirty.add(key)

    def _vm(self, vm: str) -> dict[str, Any]:
        host, name = vm.rsplit("/", 1)
        spec = self._host(host)["vms"].get(name)
        if spec is None:
            raise DriverError(f"sim: no VM {vm}", path=vm)
        self._mark(vm)
        return spec  # type: ignore[no-any-return]

    def _volume(self, volume: str) -> dict[str, Any]:
        san, name = volume.rsplit("/", 1)
        vol = self._san(san)["volumes"].get(name)
        if vol is None:
            raise DriverError(f"sim: no volume {volume}", path=volume)
        self._mark(volume)
        return vol  # type: ignore[no-any-return]

    def create_vm(self, host: str, args: Args) -> None:
        h = self._host(host)
        name = args["name"]
        volume = args.get("volume", "")
        if volume and volume not in h["volumes"]:
            raise DriverError(f"sim: volume {volume} is not attached to {host}", path=host)
        self._mark(f"{host}/{name}")
        h["vms"][name] = {
            "vcpus": args["vcpus"],
            "memory_mib": args["memory_mib"],
            "image": args.get("image", ""),
            "volume": volume,
            "state": args.get("state", "running"),
        }
        h["configs"].add(name)

    def delete_vm(self, host: str, args: Args) -> None:
        h = self._host(host)
        self._mark(f"{host}/{args['name']}")
        h["vms"].pop(args["name"], None)
        h["configs"].discard(args["name"])

    def create_config(self, host: str, args: Args) -> None:
        self._host(host)["configs"].add(args["name"])

    def delete_config(self, host: str, args: Args) -> None:
        self._host(host)["configs"].discard(args["name"])

    def migrate(self, host: str, args: Args) -> None:
        src = self._host(host)
        dest_path = str(args["dest"])
        dest = self._host(dest_path)
        name = args["name"]
        spec = src["vms"].get(name)
        if spec is None:
            if name in dest["vms"]:
                return  # already migrated
            raise DriverError(f"sim: no VM {name} on {host} to migrate", path=f"{host}/{name}")
        if host in self.processes.down:  # a live migration needs a live source
            raise DeviceFault(f"sim: host {host} is down: cannot migrate {name} from it", path=host)
        if name not in dest["configs"]:
            raise DriverError(f"sim: {dest_path} has no configuration for {name}", path=dest_path)
        self._mark(f"{host}/{name}")
        self._mark(f"{dest_path}/{name}")
        dest["vms"][name] = src["vms"].pop(name)
        volume = spec.get("volume")
        if volume:
            src["volumes"].discard(volume)
            dest["volumes"].add(volume)

    def import_volume(self, host: str, args: Args) -> None:
        volume = str(args["volume"])
        if not self._volume(volume)["exported"]:
            raise DriverError(f"sim: volume {volume} is not exported", path=volume)
        self._host(host)["volumes"].add(volume)

    def unimport_volume(self, host: str, args: Args) -> None:
        self._host(host)["volumes"].discard(args["volume"])

    def start(self, vm: str, args: Args) -> None:
        self._vm(vm)["state"] = "running"

    def stop(self, vm: str, args: Args) -> None:
        self._vm(vm)["state"] = "stopped"

    def resize(self, vm: str, args: Args) -> None:
        spec = self._vm(vm)
        spec["vcpus"] = args["vcpus"]
        spec["memory_mib"] = args["memory_mib"]

    def clone_image(self, san: str, args: Args) -> None:
        s = self._san(san)
        image = args["image"]
        if image not in s["images"]:
            raise DriverError(f"sim: no image {image} on {san}", path=f"{san}/{image}")
        vol = s["volumes"].get(args["volume"])
        if vol is None:
            self._mark(f"{san}/{args['volume']}")
            s["volumes"][args["volume"]] = {"image": f"{san}/{image}", "exported": False}

    def delete_volume(self, san: str, args: Args) -> None:
        self._mark(f"{san}/{args['volume']}")
        self._san(san)["volumes"].pop(args["volume"], None)

    def export_volume(self, volume: str, args: Args) -> None:
        self._volume(volume)["exported"] = True

    def unexport_volume(self, volume: str, args: Args) -> None:
        san, name = volume.rsplit("/", 1)
        vol = self._san(san)["volumes"].get(name)
        if vol is not None:
            self._mark(volume)
            vol["exported"] = False

    def set_next_hop(self, router: str, args: Args) -> None:
        r = self.routers.get(router)
        if r is None:
            raise DriverError(f"sim: no router {router}", path=router)
        if self._db is not None:
            self._dirty.add(router)
        r["next_hop"] = args["next_hop"]


_PROCESS_ACTIONS = frozenset({"run_replica", "halt_replica"})


def read_devices(path: str | os.PathLike[str]) -> SimDriver:
    """The devices a sim file holds, read without writing it and without its lock (its owner goes on
    meanwhile): one read transaction on a ``mode=ro`` connection, so they are of one instant. The copy
    has no file: it is for inspection (``inventory``, ``duplicates``), and nothing done to it is saved."""
    where = Path(path)
    sim = SimDriver()
    try:
        db = sqlite3.connect(f"{where.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("BEGIN")
            try:
                sim._read(db)
            finally:
                db.execute("COMMIT")
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise CorruptStore(f"{where} is not a readable sim device file: {e}", path=str(where)) from None
    return sim


__all__ = ["Fault", "Hang", "SimDriver", "read_devices"]
