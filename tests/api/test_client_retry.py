"""The Python client's retries: transport failures are retried under its policy, an HTTP error answer
never is, and kill is sent once. A mock transport stands in for the server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tropic.api.client import ApiError, Client, RetryPolicy, ServerUnreachable

QUICK = RetryPolicy(attempts=4, backoff_s=0.0, deadline_s=None)


def client(
    answer: Callable[[int], httpx.Response | None], policy: RetryPolicy = QUICK
) -> tuple[Client, list[str]]:
    """A client whose n-th request gets ``answer(n)``; None drops the connection. Returns the paths asked."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        r = answer(len(seen))
        if r is None:
            raise httpx.ConnectError("connection refused", request=request)
        return r

    return Client("http://tropic.test", retry=policy, transport=httpx.MockTransport(handle)), seen


def test_a_dropped_connection_is_retried_with_the_same_idempotency_key() -> None:
    keys: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        if len(keys) < 3:
            raise httpx.ReadTimeout("lost", request=request)
        return httpx.Response(202, json={"id": 7, "state": "SUBMITTED", "replayed": True})

    c = Client("http://tropic.test", retry=QUICK, transport=httpx.MockTransport(handle))
    assert c.submit("spawn_vm", {"name": "a"})["id"] == 7
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]


def test_attempts_run_out_into_server_unreachable() -> None:
    c, seen = client(lambda n: None)
    with pytest.raises(ServerUnreachable, match=r"no answer from http://tropic\.test"):
        c.stats()
    assert len(seen) == QUICK.attempts


def test_an_http_error_answer_is_never_retried() -> None:
    c, seen = client(
        lambda n: httpx.Response(503, json={"error": {"code": "unavailable", "message": "later"}})
    )
    with pytest.raises(ApiError) as info:
        c.stats()
    assert info.value.status == 503 and seen == ["/v1/stats"]


def test_kill_is_sent_once() -> None:
    c, seen = client(lambda n: None)
    with pytest.raises(ServerUnreachable):
        c.kill(3)
    assert seen == ["/v1/transactions/3/kill"]
