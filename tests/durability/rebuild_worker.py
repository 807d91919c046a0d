"""A process that rebuilds, one transaction each, the VMs of a dead host on a SQLite store and a sim device
file, until it is killed (``tests/durability/test_rebuild_kill9.py``). On a fresh store it spawns
``VMS`` VMs on host-01, then the host loses power and is declared failed. It writes the number of rebuilds
it saw commit (over all its runs) to ``<store>.count`` after each one.

    python tests/durability/rebuild_worker.py STORE SIM
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.helpers import small_dc
from tropic.drivers import SimDriver
from tropic.model import Host, project
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State

DEAD = "/compute/r1/host-01"
VMS = 60  # 1 vCPU each: host-01 takes 64
# Per device step of a rebuild: a kill lands inside a rebuild's steps, not only between them.
LATENCY_S = {"import_volume": 0.01, "recreate_vm": 0.01}


def main(store_path: str, sim_path: str) -> None:
    fresh = not Path(store_path).exists()
    model = small_dc(hosts=3, memory_mib=16384, regions=("r1",))
    sim = SimDriver(state_file=sim_path, latency=LATENCY_S)
    if fresh:
        sim.load(project(model))
    ctl = Controller.open(SQLiteStore(store_path), sim, initial=lambda: model, workers=2).start()
    if fresh:
        for i in range(VMS):
            args = {"host": DEAD, "name": f"v{i:02d}", "image": "/storage/r1/san-1/img-ubuntu"}
            t = ctl.wait(ctl.submit("spawn_vm", {**args, "vcpus": 1, "memory_mib": 128}), 60)
            assert t.state is State.COMMITTED, t.error
    sim.fail_host(DEAD)  # not durable in the sim: the host is dead again at every start
    if not ctl.call(lambda: ctl.model.reader().get(DEAD, Host).failed):
        t = ctl.wait(ctl.submit("declare_host_failed", {"host": DEAD}), 60)
        assert t.state is State.COMMITTED, t.error
    count = Path(store_path + ".count")
    done = int(count.read_text()) if count.exists() else 0
    while True:
        left = ctl.call(lambda: sorted(v.path for v in ctl.model.reader().get(DEAD, Host).vms()))
        if not left:
            time.sleep(0.05)  # nothing more to do: wait to be killed
            continue
        t = ctl.wait(ctl.submit("rebuild_vm", {"vm": left[0]}), 60)
        if t.state is State.COMMITTED:
            done += 1
            tmp = count.with_suffix(".tmp")
            tmp.write_text(str(done))
            os.replace(tmp, count)  # a kill never leaves a half-written count


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
