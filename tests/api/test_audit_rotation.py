"""The audit log rotates by size, keeps N rotated files, loses and duplicates nothing across a rotation,
and reads its newest entries back across the rotated files."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tropic.api.audit import AuditLog
from tropic.api.auth import Principal, Role
from tropic.errors import ConfigError

WHO = Principal("otto", Role.OPERATOR)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _all(log: AuditLog) -> list[dict[str, object]]:
    """Every entry on disk, oldest file first."""
    assert log.path is not None
    files = [log.rotated(n) for n in range(log.keep_files, 0, -1)] + [log.path]
    return [e for p in files if p.exists() for e in _lines(p)]


def test_rotates_at_the_size_and_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1000, keep_files=3)
    one = len(json.dumps(log.record(WHO, "submit", "accepted", details={"txn": 0}), sort_keys=True)) + 1
    per_file = 1000 // one
    for i in range(1, per_file):  # fills the first file up to the size, no rotation yet
        log.record(WHO, "submit", "accepted", details={"txn": i})
    assert not log.rotated(1).exists()
    log.record(WHO, "submit", "accepted", details={"txn": per_file})  # beyond the size: rotates first
    assert [e["txn"] for e in _lines(log.rotated(1))] == list(range(per_file))
    assert [e["txn"] for e in _lines(path)] == [per_file]
    for i in range(per_file + 1, 10 * per_file):
        log.record(WHO, "submit", "accepted", details={"txn": i})
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
        "audit.jsonl.3",
    ]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
    txns = [e["txn"] for e in _all(log)]
    assert txns == list(range(txns[0], 10 * per_file))  # the newest, in order, none missing
    assert txns[0] == 10 * per_file - (3 * per_file + len(_lines(path)))


def test_no_entry_lost_or_duplicated_under_concurrent_writers(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4000, keep_files=1000)
    threads, per_thread = 6, 150

    def write(t: int) -> None:
        for i in range(per_thread):
            if i % 3 == 0:
                log.record_later(WHO, "submit", "accepted", [{"t": t, "i": i}]).result(30)
            elif i % 3 == 1:
                log.record_many(WHO, "submit", "accepted", [{"t": t, "i": i}])
            else:
                log.record(WHO, "submit", "accepted", details={"t": t, "i": i})

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()
    assert log.rotated(2).exists()  # it did rotate, several times
    seen = [(e["t"], e["i"]) for e in _all(log)]
    assert len(seen) == len(set(seen)) == threads * per_thread
    for t in range(threads):  # each writer's entries in its own order
        assert [i for tt, i in seen if tt == t] == list(range(per_thread))


def test_newest_entries_are_read_back_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=500, keep_files=5)
    for i in range(40):
        log.record(WHO, "submit", "accepted", details={"txn": i})
    log.close()
    assert log.rotated(3).exists()
    again = AuditLog(path, max_bytes=500, keep_files=5, keep=15)
    assert [e["txn"] for e in again.entries(15)] == list(range(25, 40))
    assert [e["txn"] for e in again.entries(3)] == [37, 38, 39]
    again.record(WHO, "kill", "accepted", details={"txn": 40})
    assert [e["txn"] for e in again.entries(2)] == [39, 40]
    again.close()


def test_a_torn_last_line_does_not_swallow_the_next_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record(WHO, "submit", "accepted", details={"txn": 1})
    log.close()
    with open(path, "a") as f:
        f.write('{"torn": ')
    AuditLog(path).record(WHO, "kill", "accepted", details={"txn": 2})
    assert [e["txn"] for e in AuditLog(path).entries()] == [1, 2]


@pytest.mark.parametrize(("max_bytes", "keep_files"), [(0, 3), (-5, 3), (1000, 0), (1000, -1)])
def test_bad_sizes_are_refused_at_once(tmp_path: Path, max_bytes: int, keep_files: int) -> None:
    with pytest.raises(ConfigError):
        AuditLog(tmp_path / "audit.jsonl", max_bytes=max_bytes, keep_files=keep_files)


def test_a_folder_that_is_a_file_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="audit log"):
        AuditLog(tmp_path / "file" / "audit.jsonl")
