"""Linearizable reads without a ZooKeeper write (``--read-path sync``), on the real ensemble: the log's
child counter bounds every index, a replica that lags (its applying paused) does not answer a read with a
value older than a write acknowledged elsewhere, and a read on the sync path appends nothing."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ha.harness import KV, ReplicaProc, serving, wait_for, wire
from tropic.ha.contract import LogEntry, Reply, Request
from tropic.ha.log import RequestLog
from tropic.ha.program import Program
from tropic.ha.replica import Replica
from tropic.store.zkclient import open_client


def test_the_log_counter_bounds_every_index_even_after_deletions(zk_client: Any, zk_uri: str) -> None:
    """What the sync path relies on: the log node's child counter grows with every entry appended or
    deleted, a listing and its counter come from one state, and the counter read after a sync from
    another session covers every entry that session appended (its appends acknowledged)."""
    log = RequestLog(zk_client, f"c-{uuid.uuid4().hex[:8]}")
    log.ensure()
    other = open_client(zk_uri, connect_timeout=20)  # another session, maybe another server
    try:
        theirs = RequestLog(other, log.job)
        appended = [theirs.append(LogEntry("w", n, {"op": "n"})) for n in range(5)]
        counter = log.synced_counter()
        assert max(appended) < counter
        indices, listed = log.listing()
        assert indices == appended and listed == counter
        for i in appended[-2:]:  # the tail goes, as a truncation past it would remove it
            zk_client.delete(f"{log.log_path}/r-{i:010d}")
        indices, listed = log.listing()
        assert indices == appended[:-2] and listed == counter + 2
        assert log.synced_counter() == listed
        nxt = theirs.append(LogEntry("w", 9, {"op": "n"}))
        assert nxt > max(appended[:-2])  # indices keep the append order
        counter = log.synced_counter()
        assert counter > listed
        indices, listed = log.listing()
        assert indices == [*appended[:-2], nxt] and listed == counter
    finally:
        other.stop()
        other.close()


class Pair:
    """Two in-process replicas of one kv job: ``writer`` runs its apply loop; ``lagger`` applies only when
    the test calls ``apply_pending`` (its applying is paused), yet serves reads."""

    def __init__(self, zk_uri: str, read_path: str = "sync") -> None:
        self.job = f"lag-{uuid.uuid4().hex[:8]}"
        self.zks = [open_client(zk_uri, connect_timeout=20) for _ in range(2)]
        self.replicas: list[Replica] = []
        self.writer = self.replica(self.zks[0], "w", "log")
        threading.Thread(target=self.writer.run, daemon=True).start()
        wait_for(lambda: self.writer.serving, 60, "the writer serving")
        self.lagger = self.replica(self.zks[1], "lag", read_path)
        self.lagger.apply_pending()
        self.lagger.serving = True

    def replica(self, zk: Any, name: str, read_path: Any) -> Replica:
        program = Program([sys.executable, str(KV)])
        program.probe()
        r = Replica(zk, self.job, name, program, read_path=read_path)
        self.replicas.append(r)
        r.start()
        return r

    def close(self) -> None:
        for r in self.replicas:
            r.stop.set()
            r.program.stop()
        for zk in self.zks:
            zk.stop()
            zk.close()


@pytest.fixture
def pair(zk_uri: str) -> Iterator[Pair]:
    p = Pair(zk_uri)
    yield p
    p.close()


def read_while_lagging(pair: Pair, appended: int = 0) -> tuple[Reply, Reply, int]:
    """Acknowledge a write on the writer; then read the key on the lagger (its applying paused) and,
    once the read returns or is seen waiting (on the log path: once the log holds ``appended`` entries,
    the read's own included), let the lagger apply. Returns the write's reply, the
    read's reply and the lagger's applied index at the moment the read returned."""
    put = {"op": "append", "key": "k", "value": "fresh;"}
    wrote = pair.writer.handle(Request("c1", 1, put))
    assert wrote.ok, wrote  # acknowledged: in the log and applied by the writer
    local = pair.lagger.handle(Request("c2", 1, {"op": "get", "key": "k"}, consistency="local"))
    assert local.reply == {"value": None}, "the lagger really lags: its local state lacks the write"
    out: list[tuple[Reply, int]] = []

    def read() -> None:
        reply = pair.lagger.handle(Request("c2", 2, {"op": "get", "key": "k"}, read=True))
        out.append((reply, pair.lagger.applied))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def waiting() -> bool:
        if appended:
            return len(pair.lagger.log.indices()) >= appended
        return pair.lagger.reads_waiting > 0

    wait_for(lambda: out or waiting(), 60, "the read answered or waiting")
    pair.lagger.apply_pending()  # applying resumes
    reader.join(60)
    assert out, "the read never returned"
    return wrote, out[0][0], out[0][1]


def test_a_lagging_replica_answers_a_read_only_after_applying_a_write_acknowledged_elsewhere(
    pair: Pair,
) -> None:
    log_before = pair.lagger.log.indices()
    wrote, read, applied_then = read_while_lagging(pair)
    assert read.ok, read
    assert read.reply == {"value": "fresh;"}, f"a stale read after an acknowledged write: {read.reply}"
    assert applied_then >= wrote.index and read.index >= wrote.index
    assert pair.lagger.log.indices() == [*log_before, wrote.index]  # the read appended nothing


def test_the_lag_scenario_catches_a_read_that_skips_the_sync_and_the_wait(
    pair: Pair, monkeypatch: Any
) -> None:
    """The same scenario with the sync path broken (the tail as "nothing to wait for"): the read
    answers at once with the stale value, which the previous test would fail on."""
    monkeypatch.setattr(pair.lagger.log, "synced_counter", lambda **_: 0)
    _, read, _ = read_while_lagging(pair)
    assert read.ok and read.reply == {"value": None}


def test_a_read_on_the_log_path_is_appended_and_waits_too(zk_uri: str) -> None:
    p = Pair(zk_uri, read_path="log")
    try:
        before = len(p.lagger.log.indices())
        wrote, read, applied_then = read_while_lagging(p, appended=before + 2)
        assert read.ok and read.reply == {"value": "fresh;"} and read.index > wrote.index
        assert len(p.lagger.log.indices()) == before + 2  # the write and the read
        assert applied_then >= read.index
    finally:
        p.close()


@pytest.mark.parametrize("path", ["sync", "log"])
def test_a_marked_read_over_the_wire_appends_only_on_the_log_path(
    zk_uri: str, zk_client: Any, tmp_path: Path, path: str
) -> None:
    job = f"kv-{uuid.uuid4().hex[:6]}"
    proc = ReplicaProc(zk_uri, job, "kv-0", KV, tmp_path, extra=("--read-path", path)).start()
    log = RequestLog(zk_client, job)
    try:
        wait_for(lambda: serving(log, ["kv-0"]), 120, "the replica serving")
        address = log.live()["kv-0"].address
        write = {"client": "c", "seq": 1, "op": {"op": "append", "key": "k", "value": "v;"}}
        read = {"client": "c", "seq": 2, "op": {"op": "get", "key": "k"}, "read": True}
        wrote, got = wire(address, write, read)
        assert wrote["ok"] and got["ok"] and got["reply"] == {"value": "v;"}, (wrote, got)
        appended = len(log.indices())
        assert appended == (1 if path == "sync" else 2)
        assert got["index"] >= wrote["index"]
        assert f"(read path: {path})" in proc.stderr()
        bad = wire(address, {**read, "seq": 3, "read": "yes"})[0]
        assert not bad["ok"] and "read" in bad["error"]
    finally:
        proc.terminate()


def test_the_read_path_defaults_to_log_and_the_environment_chooses_for_a_controllers_replicas(
    monkeypatch: Any,
) -> None:
    from tropic.ha.contract import READ_PATH_ENV
    from tropic.ha.replica import _parse

    argv = ["--zk", "zk://127.0.0.1:2181/t", "--job", "j", "--replica", "r", "--", "prog"]
    monkeypatch.delenv(READ_PATH_ENV, raising=False)
    assert _parse(argv)[0].read_path == "log"  # strictly linearizable unless the operator opts in
    monkeypatch.setenv(READ_PATH_ENV, "sync")
    assert _parse(argv)[0].read_path == "sync"
    assert _parse(["--read-path", "log", *argv])[0].read_path == "log"  # the option wins
    monkeypatch.setenv(READ_PATH_ENV, "quorum")
    with pytest.raises(SystemExit) as exc:
        _parse(argv)
    assert exc.value.code == 2
