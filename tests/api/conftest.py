"""Fixtures of the API tests: one real server per module (fresh controller, audit log in tmp)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_harness import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield s
    s.stop()
