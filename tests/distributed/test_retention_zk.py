"""Retention on the ZooKeeper store (real ensemble): records past the policy are archived, then removed
from ZooKeeper (their chunks deleted); nothing a fence, a key or a live transaction refers to is
removed; a pass cut between the archive and the removal (a real SIGKILL) loses and duplicates nothing."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.helpers import small_dc, spawn, vm
from tropic.drivers import Fault, SimDriver
from tropic.errors import InvalidArguments
from tropic.model import STANDARD, project
from tropic.records.query import TxnQuery
from tropic.retention import Archive, Retention
from tropic.retention.zk import retain_zk
from tropic.store.zk import Paths, ZooKeeperStore
from tropic.txn import Controller, State


def _history(uri: str) -> tuple[SimDriver, list[int], int]:
    """60 transactions (one FAILED, its fence kept) on a ZooKeeper store: the devices, ids, FAILED one."""
    model = small_dc()
    sim = SimDriver(faults=[Fault(action="create_vm"), Fault(action="delete_volume", undo=True)])
    sim.load(project(model))
    c = Controller.open(ZooKeeperStore(uri, snapshot_entries=2), sim, initial=lambda: model).start()
    try:
        failed = c.wait(c.submit("spawn_vm", spawn("r1", 3, "bad")), 10)
        assert failed.state is State.FAILED
        sim.faults = []
        for i in range(20):
            c.submit("spawn_vm", spawn("r1", 1 + i % 2, f"v{i}", memory_mib=256))
            c.submit("resize_vm", {"vm": vm("r1", 1 + i % 2, f"v{i}"), "vcpus": 2, "memory_mib": 512})
            if i < 19:
                c.submit("destroy_vm", {"vm": vm("r1", 1 + i % 2, f"v{i}")})
        assert c.drain(30)
        c.store.wait_background()  # type: ignore[attr-defined]
    finally:
        c.stop()
        c.store.close()
    return sim, list(range(1, failed.id + 60)), failed.id


def _archived_ids(archive: Archive) -> list[int]:
    return [int(r["id"]) for f in archive.files() for r in archive.read(f)]


def _settle(c: Controller, store: ZooKeeperStore) -> None:
    """Commit until the retired chunks are out of the current snapshot and deleted from ZooKeeper."""
    retired = set(store._snaps.retired)
    for i in range(30):
        gone = not store._snaps.retention_pending() and not any(
            store.client.exists(f"{Paths.DATA}/{n}") for n in retired
        )
        if gone:
            return
        c.wait(c.submit("stop_vm", {"vm": f"/compute/nowhere/s{i}"}), 10)
        store.wait_background()
    raise AssertionError(f"retired chunks still in the snapshot or in ZooKeeper: {retired}")


def _stored(uri: str) -> dict[int, State]:
    reader = ZooKeeperStore(uri, read_only=True)
    try:
        restored = reader.restore(STANDARD)
        assert restored is not None
        return {t.id: t.state for t in restored.txns}
    finally:
        reader.close()


def _open(uri: str, sim: SimDriver) -> tuple[Controller, ZooKeeperStore]:
    store = ZooKeeperStore(uri, snapshot_entries=2)
    return Controller.open(store, sim).start(), store


def test_a_pass_archives_then_removes_from_zookeeper_what_the_policy_lets_go(
    zk_uri: str, tmp_path: Path
) -> None:
    sim, ids, failed = _history(zk_uri)
    archive = Archive(tmp_path / "archive")
    archive.check()
    c, store = _open(zk_uri, sim)
    try:
        chunks = list(store._snaps.index.archives)
        before = store.client.get_children(Paths.DATA)
        result = retain_zk(store, archive, Retention(max_count=10))
        assert retain_zk(store, archive, Retention(max_count=10)).removed == 0  # waits for the first
        retired = set(store._snaps.retired)
        _settle(c, store)
        after = store.client.get_children(Paths.DATA)
        store.archive = archive
        old = c.get(ids[0] if ids[0] != failed else ids[1])  # read back from the archive
        assert old.final
        # Paging finds every record, stored or archived, exactly once, newest first.
        paged: list[int] = []
        while len(page := c.history(TxnQuery(before=paged[-1] if paged else None, limit=7))) > 0:
            paged.extend(t.id for t in page)
        assert [i for i in paged if i <= ids[-1]] == sorted(ids, reverse=True)
    finally:
        c.stop()
        store.close()
    stored = _stored(zk_uri)
    history = [i for i in stored if i <= ids[-1]] + [i for i in ids if i not in stored]
    gone = sorted(i for i in ids if i not in stored)
    assert sorted(history) == ids
    assert failed in stored  # a fence refers to it
    assert all(i in stored for i in ids[-10:])  # the newest 10
    assert len(gone) >= len(ids) - 11 and result.removed == result.archived == len(gone)
    assert sorted(_archived_ids(archive)) == gone  # each exactly once, none still in ZooKeeper
    assert retired and retired <= set(chunks) <= set(before)
    assert not retired & set(after), (sorted(retired), sorted(after))  # deleted from ZooKeeper


def test_a_pass_killed_between_archive_and_removal_loses_and_duplicates_nothing(
    zk_uri: str, tmp_path: Path
) -> None:
    sim, ids, failed = _history(zk_uri)
    archive = Archive(tmp_path / "archive")
    archive.check()
    # A real SIGKILL of the leader right after the archive files are written, before the removal.
    script = (
        "import os, signal, sys\n"
        "from tropic.model import STANDARD\n"
        "from tropic.retention import Archive, Retention\n"
        "from tropic.retention.zk import retain_zk\n"
        "from tropic.store.zk import ZooKeeperStore\n"
        "store = ZooKeeperStore(sys.argv[1])\n"
        "store.restore(STANDARD)\n"
        "kill = lambda: os.kill(os.getpid(), signal.SIGKILL)\n"
        "retain_zk(store, Archive(sys.argv[2]), Retention(max_count=10), archived_hook=kill)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, zk_uri, str(archive.folder)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    first = sorted(_archived_ids(archive))
    assert first and sorted(_stored(zk_uri)) == ids  # archived, and still all in the store
    c, store = _open(zk_uri, sim)
    try:
        result = retain_zk(store, archive, Retention(max_count=10))
        _settle(c, store)
    finally:
        c.stop()
        store.close()
    stored = _stored(zk_uri)
    gone = sorted(i for i in ids if i not in stored)
    assert result.removed == len(gone) and result.archived == len(gone) - len(first)
    assert sorted(_archived_ids(archive)) == gone  # nothing lost, nothing twice
    assert failed in stored and all(i in stored for i in ids[-10:])


def test_a_restart_still_counts_the_records_retention_removed(zk_uri: str, tmp_path: Path) -> None:
    """The removed records' counts go into the snapshot that drops their chunks: a reopened controller's
    counters (and its next id) are those of the whole history, as on SQLite."""
    sim, ids, _failed = _history(zk_uri)
    archive = Archive(tmp_path / "archive")
    archive.check()
    c, store = _open(zk_uri, sim)
    try:
        assert c.counters.submitted == len(ids) and c.counters.failed == 1
        result = retain_zk(store, archive, Retention(max_count=10))
        _settle(c, store)
        expected = c.counters.to_dict()  # (with the transactions _settle ran)
        top = max(t.id for t in c.history(TxnQuery(limit=1)))
    finally:
        c.stop()
        store.close()
    assert result.removed >= len(ids) - 11
    assert len(_stored(zk_uri)) == expected["submitted"] - result.removed  # really gone from the store
    c, store = _open(zk_uri, sim)
    try:
        assert c.counters.to_dict() == expected
        assert next(c._ids) == top + 1
        # A second pass adds to the counts the first one left.
        retain_zk(store, archive, Retention(max_count=2))
        _settle(c, store)
        expected = c.counters.to_dict()
    finally:
        c.stop()
        store.close()
    c, store = _open(zk_uri, sim)
    try:
        assert c.counters.to_dict() == expected and c.counters.failed == 1
    finally:
        c.stop()
        store.close()


def test_a_replica_runs_retention_while_it_leads(
    zk_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tropic serve --retain --archive`` on zk://: passes run on the leader's store while it leads,
    removed records are read back from the archive, and stepping down stops them."""
    from tropic.api import AuditLog, TokenStore
    from tropic.errors import ConfigError
    from tropic.service.wiring import ReplicatedService, ServiceConfig, build_service

    def config(**kw: object) -> ServiceConfig:
        return ServiceConfig(
            tokens=TokenStore([("admin", "x" * 32, "admin")]),
            audit=AuditLog(tmp_path / "audit.jsonl"),
            store=zk_uri,
            driver=f"sim://{tmp_path / 'devices.db'}",
            port=0,
            reconcile_interval=0,
            retain=Retention(max_count=3),
            **kw,  # type: ignore[arg-type]
        )

    with pytest.raises(ConfigError, match="needs --archive"):
        build_service(config())
    service = build_service(config(archive=tmp_path / "archive", retain_interval=0.1))
    assert isinstance(service, ReplicatedService) and service.archive is not None
    assert any("retention while leading" in line for line in service.describe())
    # No HTTP server runs here: the gate would wait for one to serve the leader's app.
    monkeypatch.setattr(service.gate, "lead", lambda app: None)
    store = ZooKeeperStore(zk_uri, snapshot_entries=2)
    model = small_dc()
    sim = SimDriver()
    sim.load(project(model))
    c = Controller.open(store, sim, initial=lambda: model).start()
    try:
        service._lead(c)
        retention = service.retention
        assert retention is not None and store.archive is service.archive
        first = [c.wait(c.submit("stop_vm", {"vm": f"/compute/nowhere/vm-{i}"}), 10) for i in range(8)]
        for i in range(200):  # commits (snapshots) until a pass has removed the first ones
            if first[0].id not in store._history():
                break
            c.wait(c.submit("stop_vm", {"vm": f"/compute/nowhere/more-{i}"}), 10)
            store.wait_background()
        else:
            raise AssertionError("no record removed by the leader's retention passes")
        assert retention.removed > 0
        old = c.get(first[0].id)  # from the archive
        assert old.state is State.ABORTED and old.args == {"vm": "/compute/nowhere/vm-0"}
        service._step_down()
        assert service.retention is None and not retention._thread.is_alive()
    finally:
        c.stop()
        store.close()
        service.devices.close()
        for s in service.sockets:
            s.close()


def test_a_soak_on_zookeeper_with_retention_keeps_each_record_once(zk_uri: str, tmp_path: Path) -> None:
    """``tropic bench soak --store zk://... --retain N --archive DIR``: every record is in the store or in
    the archive, exactly once, and passes removed some."""
    from tropic.scenario.soak import SoakSpec, run_soak

    archive = Archive(tmp_path / "archive")
    spec = SoakSpec(
        txns=2400, store=zk_uri, hosts=16, slots=40, slices=6, workers=2, retain=Retention(max_count=300)
    )
    with pytest.raises(InvalidArguments, match="archive folder"):
        run_soak(spec)
    r = run_soak(dataclasses.replace(spec, archive=archive.folder))
    archived = _archived_ids(archive)
    assert r["retained_removed"] == len(archived) == len(set(archived)) > 0
    # The last pass's removal waits for a snapshot the run ended before: a new leader's pass does it.
    assert set(_stored(zk_uri)) | set(archived) == set(range(1, 2401))
    c, store = _open(zk_uri, SimDriver())
    try:
        retain_zk(store, archive, Retention(max_count=300))
        _settle(c, store)
    finally:
        c.stop()
        store.close()
    archived = _archived_ids(archive)
    stored = [i for i in _stored(zk_uri) if i <= 2400]
    assert sorted(stored + archived) == list(range(1, 2401))  # each exactly once
