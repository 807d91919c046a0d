"""``sim``: an in-repo simulated datacenter with its own physical state, latency and fault injection.

Its state is independent of the logical model (tests compare the two to prove consistency and the absence
of orphans). Faults are deterministic under a seed: whether a step fails depends only on the seed and the
step's identity (transaction, index, forward/undo), not on thread timing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tropic.drivers.base import Args, Driver, Step
from tropic.errors import CorruptStore, DeviceFault, DriverError
from tropic.model import Inventory, Value


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


def _uniform(seed: int, step: Step) -> float:
    key = f"{seed}:{step.txn}:{step.index}:{int(step.undo)}:{step.action}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


class SimDriver(Driver):
    """A simulated datacenter: hosts with VMs, configs and imported volumes; SANs; routers."""

    name = "sim"

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: float | Mapping[str, float] = 0.0,
        faults: list[Fault] | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.seed = seed
        self.latency = latency
        self.faults: list[Fault] = list(faults or [])
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
        self.applied: dict[tuple[int, int, bool], int] = {}  # effective applications of each step
        self._db: sqlite3.Connection | None = None
        if state_file is not None:
            self._open(Path(state_file))

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
                self._dirty = set(self.hosts) | set(self.sans) | set(self.routers)
                self._persist(None)

    def inventory(self) -> Inventory:
        with self._lock:
            return {
                "hosts": {
                    p: {
                        "vms": copy.deepcopy(h["vms"]),
                        "configs": sorted(h["configs"]),
                        "volumes": sorted(h["volumes"]),
                    }
                    for p, h in self.hosts.items()
                },
                "storage": {
                    p: {"images": sorted(s["images"]), "volumes": copy.deepcopy(s["volumes"])}
                    for p, s in self.sans.items()
                },
                "routers": copy.deepcopy(self.routers),
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

    # --- durability ------------------------------------------------------------------------------------
    def _open(self, path: Path) -> None:
        existed = path.exists()
        try:
            if existed:
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
        self._db = db
        for key, kind, value in db.execute("SELECT key, kind, value FROM sim_objects"):
            obj = json.loads(value)
            if kind == "host":
                self.hosts[key] = {
                    "vms": obj["vms"],
                    "configs": set(obj["configs"]),
                    "volumes": set(obj["volumes"]),
                }
            elif kind == "san":
                self.sans[key] = {"images": set(obj["images"]), "volumes": obj["volumes"]}
            else:
                self.routers[key] = obj
            self._saved[key] = value
        for txn, idx, undo, n in db.execute("SELECT txn, idx, undo, n FROM sim_applied"):
            self.applied[(txn, idx, bool(undo))] = n
        row = db.execute("SELECT value FROM sim_meta WHERE key='faults'").fetchone()
        if row is not None:
            self.faults = [Fault.from_dict(f) for f in json.loads(row[0])]

    @property
    def durable(self) -> bool:
        return self._db is not None

    def save_faults(self) -> None:
        if self._db is not None:
            with self._lock:
                data = json.dumps([f.to_dict() for f in self.faults])
                self._db.execute("INSERT OR REPLACE INTO sim_meta VALUES ('faults', ?)", (data,))

    def _serialise(self, key: str) -> tuple[str, str] | None:
        if key in self.hosts:
            h = self.hosts[key]
            obj: Any = {"vms": h["vms"], "configs": sorted(h["configs"]), "volumes": sorted(h["volumes"])}
            return "host", json.dumps(obj, sort_keys=True)
        if key in self.sans:
            sn = self.sans[key]
            return "san", json.dumps(
                {"images": sorted(sn["images"]), "volumes": sn["volumes"]}, sort_keys=True
            )
        if key in self.routers:
            return "router", json.dumps(self.routers[key], sort_keys=True)
        return None

    def _persist(self, step: Step | None) -> None:
        """Write the objects an action changed (called under the lock). Counts effective applications."""
        dirty, self._dirty = self._dirty, set()
        changed: list[tuple[str, str, str]] = []
        for key in dirty:
            ser = self._serialise(key)
            if ser is not None and self._saved.get(key) != ser[1]:
                changed.append((key, ser[0], ser[1]))
                self._saved[key] = ser[1]
        if not changed:
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
        if applied is not None:
            db.execute("INSERT OR REPLACE INTO sim_applied VALUES (?, ?, ?, ?)", applied)
        db.execute("COMMIT")

    def duplicates(self) -> list[tuple[int, int, bool]]:
        """Steps whose effect was applied more than once (a redo that was not idempotent)."""
        return sorted(k for k, n in self.applied.items() if n > 1 and not k[2])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

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
                    hit = f.probability >= 1.0 or _uniform(self.seed, step) < f.probability
                if hit:
                    f.fired += 1
                    return f
        return None

    def execute(self, step: Step) -> None:
        fault = self._fault_for(step)
        with self._lock:
            self._running += 1
            self.max_parallel = max(self.max_parallel, self._running)
            self.in_flight[step.path] = self.in_flight.get(step.path, 0) + 1
        try:
            delay = self._delay(step.action)
            if delay > 0:
                time.sleep(delay)
            if fault is not None and not fault.after:
                raise DeviceFault(f"{fault.message}: {step.describe()}", path=step.path)
            with self._lock:
                try:
                    super().execute(step)
                finally:
                    if self._db is not None or self._dirty:
                        self._persist(step)
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

    def _vm(self, vm: str) -> dict[str, Any]:
        host, name = vm.rsplit("/", 1)
        spec = self._host(host)["vms"].get(name)
        if spec is None:
            raise DriverError(f"sim: no VM {vm}", path=vm)
        return spec  # type: ignore[no-any-return]

    def _volume(self, volume: str) -> dict[str, Any]:
        san, name = volume.rsplit("/", 1)
        vol = self._san(san)["volumes"].get(name)
        if vol is None:
            raise DriverError(f"sim: no volume {volume}", path=volume)
        return vol  # type: ignore[no-any-return]

    def create_vm(self, host: str, args: Args) -> None:
        h = self._host(host)
        name = args["name"]
        volume = args.get("volume", "")
        if volume and volume not in h["volumes"]:
            raise DriverError(f"sim: volume {volume} is not attached to {host}", path=host)
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
        if name not in dest["configs"]:
            raise DriverError(f"sim: {dest_path} has no configuration for {name}", path=dest_path)
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
            s["volumes"][args["volume"]] = {"image": f"{san}/{image}", "exported": False}

    def delete_volume(self, san: str, args: Args) -> None:
        self._san(san)["volumes"].pop(args["volume"], None)

    def export_volume(self, volume: str, args: Args) -> None:
        self._volume(volume)["exported"] = True

    def unexport_volume(self, volume: str, args: Args) -> None:
        san, name = volume.rsplit("/", 1)
        vol = self._san(san)["volumes"].get(name)
        if vol is not None:
            vol["exported"] = False

    def set_next_hop(self, router: str, args: Args) -> None:
        r = self.routers.get(router)
        if r is None:
            raise DriverError(f"sim: no router {router}", path=router)
        if self._db is not None:
            self._dirty.add(router)
        r["next_hop"] = args["next_hop"]
