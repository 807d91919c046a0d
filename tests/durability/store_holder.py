"""A process that owns an embedded store, for the ownership tests (run as a script, never imported).

It opens the store and its sim devices, optionally leaves work in flight (spawns whose device calls hang
until the process dies: one STARTED per host, the others DEFERRED behind it) or changes a device behind
the model's back, prints one JSON line when ready, and holds the store until its stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tropic.drivers.sim import SimDriver
from tropic.model import STANDARD, project
from tropic.owner import Holder
from tropic.records.record import Transaction
from tropic.scenario.workload import datacenter
from tropic.store.registry import parse_store_uri
from tropic.store.sqlite import SQLiteStore, read_snapshot
from tropic.txn import Controller
from tropic.txn.worker import Deadlines, LocalExecutor

HOSTS = ("/compute/us-east/host-01", "/compute/us-east/host-02")
DRIFT_HOST = "/compute/us-east/host-03"
FOREVER = 24 * 3600.0


def _progress(txns: list[Transaction]) -> dict[int, tuple[str, int]]:
    return {t.id: (t.state.value, len(t.steps)) for t in txns}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--url", default=None, help="the URL to name as this holder's API")
    p.add_argument("--stuck", type=int, default=0, help="spawns left in flight, alternating two hosts")
    p.add_argument("--drift", action="store_true", help="spawn a VM, then stop it behind the model's back")
    args = p.parse_args()
    spec = parse_store_uri(args.store)
    assert spec.path is not None and spec.devices is not None
    holder = Holder.current(command="store-holder", url=args.url)
    store = SQLiteStore(spec.path, holder=holder)
    sim = SimDriver(state_file=spec.devices, holder=holder)
    fresh = not store.has_model()
    model = datacenter()
    if fresh:
        sim.load(project(model))
    # The spawns' host steps never answer while this process lives.
    hangs = [sim.hang(host, timeout=FOREVER) for host in HOSTS]
    executor = LocalExecutor(sim, 8, deadlines=Deadlines(default=FOREVER, actions={}))
    c = Controller.open(store, sim, initial=lambda: model, executor=executor, watchdog=None).start()
    image = "/storage/us-east/san-1/img-ubuntu"
    if args.drift:
        vm = {"host": DRIFT_HOST, "name": "drifter", "image": image, "vcpus": 1, "memory_mib": 512}
        t = c.wait(c.submit("spawn_vm", vm, submitter="holder"), 300)
        assert t.state.value == "COMMITTED", t.error
        sim.crash_vm(f"{DRIFT_HOST}/drifter")
    for i in range(args.stuck):
        c.submit(
            "spawn_vm",
            {"host": HOSTS[i % 2], "name": f"held-{i}", "image": image, "vcpus": 1, "memory_mib": 512},
            submitter="holder",
        )
    # Wait until each is hung on its host or deferred behind one that is, and all of it is durable.
    deadline = time.monotonic() + 300
    for hang in hangs[: args.stuck]:
        if not hang.entered.wait(300):
            sys.exit("a spawn never reached its host")
    while True:
        states = c.states()
        now = c.call(lambda: _progress(c.transactions()))
        stored = read_snapshot(spec.path, STANDARD)
        if states.get("SUBMITTED", 0) == 0 and stored is not None and _progress(stored.txns) == now:
            break
        if time.monotonic() > deadline:
            sys.exit(f"work did not settle: {states}")
        time.sleep(0.02)
    print(json.dumps({"pid": os.getpid(), "states": states}), flush=True)
    sys.stdin.read()
    os._exit(0)  # the hung device calls would hold a clean stop; the OS releases the locks


if __name__ == "__main__":
    main()
