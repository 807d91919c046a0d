"""One owner per store: a process that opens a store (or its sim devices) holds it until it ends; any
other process is refused at once, naming the holder, and changes nothing; ``check`` of a held store reads
it read-only and runs nothing; a kill -9 of the holder frees the store at once. Real processes throughout:
the holder is ``store_holder.py``, which leaves work in flight on devices that never answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tropic.drivers.sim import SimDriver, read_devices
from tropic.drivers.sim_shared import SharedSimDriver
from tropic.errors import ConfigError, CorruptStore, StoreError, StoreInUse
from tropic.model import STANDARD
from tropic.owner import Holder, holder_file
from tropic.service.embedded import open_embedded
from tropic.store.sqlite import SQLiteStore, read_snapshot

TROPIC = [sys.executable, "-m", "tropic.cli"]
HOLDER = Path(__file__).with_name("store_holder.py")
URL = "http://127.0.0.1:9"  # named by the holder as its API; never contacted


class Held:
    """A running ``store_holder.py``: its process and what it reported when ready."""

    def __init__(self, store: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), str(store), "--url", URL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the holder gives up by itself after its own deadline
        if not line:
            raise AssertionError(f"the store holder did not start: {self.proc.communicate(timeout=30)}")
        self.ready: dict[str, Any] = json.loads(line)
        self.pid = self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)


@pytest.fixture
def holders() -> Iterator[list[Held]]:
    started: list[Held] = []
    yield started
    for h in started:
        h.kill()


def contents(store: Path) -> Any:
    """Everything a store and its devices hold, and which files lie beside them."""
    snap = read_snapshot(store, STANDARD)
    assert snap is not None
    devices = read_devices(store.with_name(store.name + ".devices"))
    return (
        [t.to_dict() for t in snap.txns],
        {p: (n.kind, n.attrs) for p, n in snap.model.nodes.items()},
        snap.fenced,
        devices.inventory(),
        devices.applied,
        sorted(os.listdir(store.parent)),
    )


def tropic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TROPIC, *args], capture_output=True, text=True, timeout=300)


def refused_naming(out: subprocess.CompletedProcess[str], store: Path, pid: int) -> None:
    """One clear line naming the store and its holder (pid and API), a non-zero exit, no traceback."""
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"store {store} is in use by store-holder (pid {pid}, {URL})" in lines[0]
    assert f"--url {URL}" in lines[0]


def test_a_second_process_is_refused_naming_the_holder_and_changes_nothing(
    tmp_path: Path, holders: list[Held]
) -> None:
    store = tmp_path / "s.db"
    held = Held(store, "--stuck", "2")
    holders.append(held)
    before = contents(store)
    refused_naming(tropic("run-workload", "--store", str(store), "--txns", "5"), store, held.pid)
    refused_naming(tropic("optimize", "rebalance", "--store", str(store), "--execute"), store, held.pid)
    with pytest.raises(StoreInUse) as e:
        SQLiteStore(store)
    assert e.value.holder is not None and e.value.holder["pid"] == held.pid
    assert e.value.holder["url"] == URL
    with pytest.raises(StoreInUse, match=f"pid {held.pid}"):
        open_embedded(str(store))
    with pytest.raises(StoreInUse, match=f"sim devices .* is in use by store-holder \\(pid {held.pid}"):
        SimDriver(state_file=store.with_name("s.db.devices"))
    assert contents(store) == before
    assert held.proc.poll() is None  # the holder goes on


def test_check_of_a_held_store_runs_nothing_and_says_it_is_read_only(
    tmp_path: Path, holders: list[Held]
) -> None:
    store = tmp_path / "s.db"
    held = Held(store, "--stuck", "4")
    holders.append(held)
    assert held.ready["states"] == {"STARTED": 2, "DEFERRED": 2}
    before = contents(store)
    out = tropic("check", "--store", str(store), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["read_only"] is True and report["healthy"] is True
    assert report["holder"]["pid"] == held.pid and report["holder"]["url"] == URL
    assert report["by_state"] == {"STARTED": 2, "DEFERRED": 2} and report["in_flight"] == 4
    # What the started spawns lock is changing, so it is not compared; the rest agrees with the model.
    assert "/compute/us-east/host-01" in report["busy"] and report["consistent"] is True
    assert report["violations"] == 0 and report["duplicates"] == 0
    text = tropic("check", "--store", str(store))
    assert text.returncode == 0, text.stderr
    assert f"read-only: the store is in use by store-holder (pid {held.pid}, {URL})" in text.stdout
    assert "ran nothing" in text.stdout
    assert contents(store) == before  # no state moved, no device was called, no file appeared


def test_check_of_a_held_store_exits_1_when_the_devices_differ(tmp_path: Path, holders: list[Held]) -> None:
    store = tmp_path / "s.db"
    holders.append(Held(store, "--drift", "--stuck", "1"))
    out = tropic("check", "--store", str(store), "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["read_only"] is True and report["healthy"] is False
    assert report["consistent"] is False
    assert any("host-03" in d and "stopped" in d for d in report["differences"])


def test_kill9_of_the_holder_frees_the_store_at_once(tmp_path: Path, holders: list[Held]) -> None:
    store = tmp_path / "s.db"
    held = Held(store, "--stuck", "2")
    holders.append(held)
    assert json.loads(holder_file(store).read_text())["pid"] == held.pid
    held.kill()
    opened = SQLiteStore(store)  # at once: the kernel dropped the dead process's lock
    try:
        assert json.loads(holder_file(store).read_text())["pid"] == os.getpid()
        restored = opened.restore(STANDARD)
        assert restored is not None and len(restored.txns) == 2
    finally:
        opened.close()
    assert not holder_file(store).exists()  # a closed store names no holder


def test_opens_inside_one_process_share_the_lock_until_the_last_closes(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    opens = f"from tropic.store.sqlite import SQLiteStore; SQLiteStore({str(store)!r})"
    probe = [sys.executable, "-c", opens]
    first = SQLiteStore(store, holder=Holder.current(command="first", url=URL))
    second = SQLiteStore(store)  # a restart simulated in one process: allowed, it is the same owner
    first.close()
    out = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "is in use by first" in out.stderr
    second.close()
    assert subprocess.run(probe, capture_output=True, text=True, timeout=120).returncode == 0


def test_shared_sim_devices_exclude_an_exclusive_owner_and_the_other_way_round(tmp_path: Path) -> None:
    devices = tmp_path / "devices.db"
    hold = (
        "import sys; from tropic.drivers.sim_shared import SharedSimDriver as S; "
        f"d = S({str(devices)!r}); print('ready', flush=True); sys.stdin.read()"
    )
    shared = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert shared.stdout is not None and shared.stdout.readline().strip() == "ready"
        with pytest.raises(StoreInUse, match="no details"):
            SimDriver(state_file=devices)
        SharedSimDriver(devices).close()  # shared users share
    finally:
        shared.communicate("", timeout=60)
    owner = SimDriver(state_file=devices)
    try:
        out = subprocess.run(
            [sys.executable, "-c", hold], input="", capture_output=True, text=True, timeout=120
        )
        assert out.returncode != 0 and f"is in use by {Holder.current().command}" in out.stderr
    finally:
        owner.close()


def test_a_foreign_file_gets_no_holder_file_and_a_bad_folder_is_one_line(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_bytes(b"not a database\n" * 100)
    with pytest.raises(CorruptStore):
        SQLiteStore(foreign)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    with pytest.raises(StoreError, match="cannot make its folder"):
        SQLiteStore(foreign / "s.db")
    out = tropic("run-workload", "--store", str(foreign / "s.db"), "--txns", "1")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "cannot make its folder" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_offline_commands_refuse_a_distributed_store_instead_of_deposing_its_leader() -> None:
    # Opening a zk:// store as a controller would take it over from the elected leader.
    with pytest.raises(ConfigError, match="written only by its elected leader"):
        open_embedded("zk://127.0.0.1:1/tropic")
