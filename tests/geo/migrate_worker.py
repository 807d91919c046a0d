"""A process that keeps migrating a replicated service's member between regions on a SQLite store and a
sim device file, until it is killed (``tests/geo/test_migrate_kill9.py``). It writes the number of
migrations it saw commit (over all its runs) to ``<store>.count`` after each one.

    python tests/geo/migrate_worker.py STORE SIM
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.helpers import build, world_model
from tropic.drivers import SimDriver
from tropic.model import project
from tropic.store.sqlite import SQLiteStore
from tropic.txn import Controller, State


def main(store_path: str, sim_path: str) -> None:
    fresh = not Path(store_path).exists()
    model = world_model()
    sim = SimDriver(state_file=sim_path)
    if fresh:
        sim.load(project(model))
    ctl = Controller.open(SQLiteStore(store_path), sim, initial=lambda: model, workers=2).start()
    if fresh:
        build(ctl, sim)
    count = Path(store_path + ".count")
    done = 0
    while True:
        for region in ("r3", "r1"):
            t = ctl.wait(
                ctl.submit("migrate_member", {"service": "zk", "member": "m1", "region": region}), 60
            )
            if t.state is State.COMMITTED:
                done += 1
                tmp = count.with_suffix(".tmp")
                tmp.write_text(str(done))
                os.replace(tmp, count)  # a kill never leaves a half-written count


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
