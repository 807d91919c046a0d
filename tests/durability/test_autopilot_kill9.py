"""A served autopilot SIGKILLed in the middle of a pass on the embedded (SQLite) store: the server
records a pass of four migrations, runs two, submits the third and is killed before it can note that
transaction in the pass record. The restarted server resumes the pass: the third migration is found by
its idempotency key, kept with its record in the store's file (not submitted again), the fourth is
submitted, and every VM ends where the plan put it, moved exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from autopilot.served import close, config
from tropic.autopilot.decisions import ACTED
from tropic.autopilot.passes import SQLitePassBook
from tropic.records.query import TxnQuery
from tropic.service.wiring import EmbeddedService, build_service

H1 = "/compute/us-east/host-01"
DEST = {"m0": "/compute/us-east/host-02", "m1": "/compute/us-east/host-03", "m2": "/compute/us-east/host-02"}
DEST["m3"] = "/compute/us-east/host-03"

# The server: `tropic serve --autopilot hotspot` as built by the CLI, on a SQLite store, its policy swapped
# for a fixed four-move plan; SIGKILL right after the third step's transaction is durably submitted,
# before the pass record notes it.
SERVER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from autopilot.served import config
from tropic.autopilot.actuator import ControllerExecutor
from tropic.autopilot.base import Move, Plan
from tropic.service.wiring import build_service

tmp = Path(sys.argv[1])
dest = dict(a.split("=") for a in sys.argv[3:])
service = build_service(config(tmp, policies="hotspot", interval=3600, sense_interval=3600))
c = service.controller
for name in dest:
    t = c.wait(c.submit("spawn_vm", {"name": name, "host": "/compute/us-east/host-01",
               "image": "/storage/us-east/san-1/img-ubuntu", "vcpus": 1, "memory_mib": 512}), 60)
    assert t.state.value == "COMMITTED", t.error

class Fixed:
    name = "fixed"
    def plan(self, snapshot, *, budget, time_limit):
        moves = tuple(Move(f"/compute/us-east/host-01/{n}", d) for n, d in dest.items())
        return Plan("fixed", moves=moves, gain=10.0, cost=1.0, why="four moves")

class Dies(ControllerExecutor):
    def submit(self, procedure, args, key):
        txn = super().submit(procedure, args, key)
        if key.endswith(":2"):
            os.kill(os.getpid(), signal.SIGKILL)
        return txn

a = service.autopilot
a.policies = [Fixed()]
a.executor = Dies(c)
a.run_once("periodic")
"""


def test_a_server_killed_mid_pass_resumes_it_without_running_a_migration_twice(tmp_path: Path) -> None:
    tests = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", SERVER, str(tmp_path), tests, *(f"{n}={d}" for n, d in DEST.items())],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    book = SQLitePassBook(tmp_path / "store.db")
    [record] = book.get_autopilot_passes()
    book.close()
    assert not record["done"] and [s.get("txn") is not None for s in record["steps"]] == [
        True,
        True,
        False,
        False,
    ]

    # The restarted server: its autopilot resumes the pass before anything else.
    service = build_service(config(tmp_path, policies="hotspot", interval=3600, sense_interval=3600))
    assert isinstance(service, EmbeddedService) and service.autopilot is not None
    try:
        a = service.autopilot
        c = service.controller
        assert c._wait_until(lambda: any(d.trigger == "resume" for d in a.decisions.recent()), 120)
        [d] = [d for d in a.decisions.recent() if d.trigger == "resume"]
        assert d.status == ACTED and [s.state for s in d.steps] == ["COMMITTED"] * 4, d.steps
        migrations = [t for t in service.embedded.store.find_txns(TxnQuery()) if t.procedure == "migrate_vm"]
        moved = sorted(str(t.args["vm"]).rsplit("/", 1)[1] for t in migrations)
        assert moved == sorted(DEST)  # each VM migrated exactly once: nothing lost, nothing twice
        assert {t.id for t in migrations} == {s.txn for s in d.steps}
        assert all(t.state.value == "COMMITTED" for t in migrations)

        def where() -> dict[str, str]:
            return {
                p.rsplit("/", 1)[1]: p.rsplit("/", 1)[0] for p, n in c.model.nodes.items() if n.kind == "vm"
            }

        assert {n: h for n, h in c.call(where).items() if n in DEST} == DEST
        assert SQLitePassBook(tmp_path / "store.db").get_autopilot_passes()[0]["done"] is True
        assert c.check()["violations"] == []
    finally:
        close(service)
