"""Every replica applies the log in its order and a ``(client, seq)`` once, whether it follows the log
from the start or restores a snapshot and follows the rest (hypothesis, on the real ensemble, with the
kv example as the program)."""

from __future__ import annotations

import sys
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ha.harness import KV
from tropic.ha.contract import LogEntry
from tropic.ha.program import Program
from tropic.ha.replica import Replica
from tropic.store.zkclient import open_client

requests = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 6), st.sampled_from(["x", "y"])), max_size=25
)


def model(log: list[tuple[str, int, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """What applying the log once per (client, seq), in order, gives: the values, and each client's seq."""
    data: dict[str, str] = {}
    last: dict[str, int] = {}
    for n, (client, seq, key) in enumerate(log):
        if last.get(client, 0) >= seq:
            continue  # a retry (same seq) or a stale request (lower seq): not applied again
        last[client] = seq
        data[key] = data.get(key, "") + f"{client}{seq}#{n};"
    return data, last


def state(replica: Replica) -> dict[str, Any]:
    keys = replica.program.ask({"op": "keys"})["keys"]
    return {k: replica.program.ask({"op": "get", "key": k})["value"] for k in keys}


def started(zk: Any, job: str, name: str, every: int, replicas: list[Replica]) -> Replica:
    """A replica of the KV example for ``job``, started and added to ``replicas`` (stopped by the test)."""
    program = Program([sys.executable, str(KV)])
    program.probe()
    r = Replica(zk, job, name, program, snapshot_every=every)
    replicas.append(r)
    r.start()
    return r


@settings(max_examples=15)
@given(log=requests)
def test_replicas_apply_the_log_order_once_per_request(
    zk_ensemble: Any, log: list[tuple[str, int, str]]
) -> None:
    zk = open_client(zk_ensemble.uri("/tropic-tests/ha-apply"), connect_timeout=20)
    job = f"p-{uuid.uuid4().hex[:8]}"
    replicas: list[Replica] = []

    def replica(name: str, every: int) -> Replica:
        return started(zk, job, name, every, replicas)

    try:
        first, second = replica("r1", 1000), replica("r2", 3)  # r2 snapshots (and truncates) often
        half = len(log) // 2
        for n, (client, seq, key) in enumerate(log):
            if n == half:
                second.apply_pending()
            # the value names the log position, so a request applied twice would show
            first.log.append(
                LogEntry(client, seq, {"op": "append", "key": key, "value": f"{client}{seq}#{n};"})
            )
        expected, last = model(log)
        for r in (first, second):
            r.apply_pending()
        late = replica("r3", 1000)  # starts from r2's snapshot (the log may be truncated) + the rest
        late.apply_pending()
        for r in (first, second, late):
            assert state(r) == expected
            assert {c: s for c, (s, _) in r.sessions.items()} == last
            assert r.applied == first.applied
        assert first.log.size() <= len(log)
    finally:
        for r in replicas:
            r.program.stop()
        zk.stop()
        zk.close()


def test_sessions_are_bounded_and_every_replica_keeps_the_same(zk_ensemble: Any, monkeypatch: Any) -> None:
    import tropic.ha.replica as replica_mod

    monkeypatch.setattr(replica_mod, "MAX_SESSIONS", 2)
    zk = open_client(zk_ensemble.uri("/tropic-tests/ha-sessions"), connect_timeout=20)
    job = f"s-{uuid.uuid4().hex[:8]}"
    replicas: list[Replica] = []

    def replica(name: str, every: int) -> Replica:
        return started(zk, job, name, every, replicas)

    try:
        first, second = replica("r1", 1000), replica("r2", 1)  # r2 snapshots after every entry
        for n, client in enumerate(["a", "b", "c", "a", "d", "a"]):
            first.log.append(LogEntry(client, n + 1, {"op": "append", "key": "k", "value": f"{client};"}))
        for r in (first, second):
            r.apply_pending()
        late = replica("r3", 1000)  # from r2's snapshot
        late.apply_pending()
        for r in (first, second, late):
            assert list(r.sessions) == ["d", "a"]  # the two clients applied most recently, oldest first
            assert r.sessions["a"][0] == 6
    finally:
        for r in replicas:
            r.program.stop()
        zk.stop()
        zk.close()
