"""The contract's records round-trip through their JSON encodings, and anything malformed is a WireError
naming what is wrong (never a KeyError or TypeError reaching a replica's connection thread)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropic.ha.codec import (
    WireError,
    decode_entry,
    decode_info,
    decode_reply,
    decode_request,
    decode_snapshot,
    encode,
)
from tropic.ha.contract import LogEntry, ReplicaInfo, Reply, Request, Snapshot

scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3)
)
ops = st.dictionaries(st.text(max_size=6), values, max_size=4)
seqs = st.integers(0, 2**62)


@given(st.builds(LogEntry, st.text(max_size=8), seqs, ops))
def test_log_entries_round_trip(entry: LogEntry) -> None:
    assert decode_entry(encode(entry)) == entry


@given(st.builds(Request, st.text(max_size=8), seqs, ops, st.sampled_from(["linearizable", "local"])))
def test_requests_round_trip(request: Request) -> None:
    assert decode_request(encode(request)) == request


@given(
    st.builds(
        Reply, st.text(max_size=8), seqs, st.booleans(), values, st.integers(-1, 10**9), st.text(max_size=8)
    )
)
def test_replies_round_trip(reply: Reply) -> None:
    assert decode_reply(encode(reply)) == reply


@given(
    st.builds(
        ReplicaInfo, st.text(max_size=8), st.text(max_size=12), st.integers(-1, 10**9), st.text(max_size=8),
        st.integers(0, 2**22), st.sampled_from(["catching-up", "serving"]),
    )
)  # fmt: skip
def test_replica_infos_round_trip_and_read_as_plain_keyword_arguments(info: ReplicaInfo) -> None:
    assert decode_info(encode(info)) == info == ReplicaInfo(**json.loads(encode(info)))


@given(
    st.builds(
        Snapshot,
        st.integers(-1, 10**9),
        values,
        st.dictionaries(st.text(max_size=6), st.tuples(seqs, values)),
    )
)
def test_snapshots_round_trip(snapshot: Snapshot) -> None:
    assert decode_snapshot(encode(snapshot)) == snapshot


MALFORMED = [
    b"",
    b"not json",
    b'{"client": "c", "seq": 1, "ok": true, "index": "x"}',
    b"[1, 2]",
    b'{"seq": 1, "op": {}}',
    b'{"client": "c", "seq": "1", "op": {}}',
    b'{"client": "c", "seq": true, "op": {}}',
    b'{"client": "c", "seq": 1, "op": []}',
    b'{"client": "c", "seq": 1, "op": {}, "consistency": "eventual"}',
    b"\xff\xfe",
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_records_are_wire_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        decode_request(data)
    with pytest.raises(WireError):
        decode_reply(data)


@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_no_input_escapes_as_anything_but_a_wire_error(data: bytes) -> None:
    decoders: list[Any] = [decode_entry, decode_request, decode_reply, decode_info, decode_snapshot]
    for decode in decoders:
        with contextlib.suppress(WireError):
            decode(data)
