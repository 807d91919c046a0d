"""Bad input at the REST API: every case gets a clear 4xx JSON answer, the connection stays usable, and
nothing changes (no transaction recorded, no resource added)."""

from __future__ import annotations

import select

import pytest
from api_harness import (
    HOST,
    OPERATOR,
    VIEWER,
    Server,
    raw_connection,
    read_response,
    spawn_args,
)

from tropic.api.client import Client
from tropic.errors import UnknownResource


def txn_count(server: Server) -> int:
    return len(server.controller.transactions())


def request(method: str, target: str, token: str | None, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: tropic"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- Last-Event-ID ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [b"\xb2", b"\xd9\xa3", b"abc", b"-1", b"1.5", b"1" * 21])
def test_a_last_event_id_that_is_not_a_decimal_number_is_422_and_the_connection_lives(
    server: Server, value: bytes
) -> None:
    """``"²".isdigit()`` is True but ``int("²")`` fails: it was a 500 that reset the keep-alive connection."""
    with raw_connection(server.url) as sock:
        head = f"GET /v1/events HTTP/1.1\r\nHost: tropic\r\nAuthorization: Bearer {VIEWER}\r\n".encode()
        sock.sendall(head + b"Last-Event-ID: " + value + b"\r\n\r\n")
        r = read_response(sock)
        assert r.status == 422, r.body
        err = r.json()["error"]
        assert err["code"] == "invalid_request" and "Last-Event-ID" in err["message"]
        sock.sendall(request("GET", "/v1/whoami", VIEWER))
        again = read_response(sock)
        assert again.status == 200 and again.json()["name"] == "vera"


# --- names --------------------------------------------------------------------------------------------------
BAD_NAMES = [
    ".",
    "..",
    "x\0y",
    "a\nb",
    "\u202eevil",
    "x" * 10_000,
    "Web-1",
    "a_b",
    "-a",
    "a-",
    "",
    "a/b",
    "x" * 60,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: ascii(n)[:24])
def test_a_vm_name_that_breaks_the_rule_is_422_before_anything_is_recorded(server: Server, name: str) -> None:
    c = server.client(OPERATOR)
    before, nodes = txn_count(server), len(server.controller.model)
    for endpoint in ("/v1/transactions", "/v1/plan"):
        r = c.post(endpoint, json={"procedure": "spawn_vm", "args": spawn_args(name)})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_arguments" and "'name'" in err["message"]
        assert len(err["message"]) < 400  # a 10,000-character name is not echoed back
    assert txn_count(server) == before and len(server.controller.model) == nodes


def test_the_longest_valid_vm_name_commits(server: Server) -> None:
    name = "v" * 59  # its volume vol-<name> is 63 characters, the most a name may have
    r = server.client(OPERATOR).post(
        "/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args(name)}
    )
    assert r.status_code == 202, r.text
    assert server.wait_final(r.json()["id"])["state"] == "COMMITTED"
    assert f"{HOST}/{name}" in server.controller.model


def test_the_rule_is_published_in_the_procedures_schema(server: Server) -> None:
    procs = {p["name"]: p for p in server.client(VIEWER).get("/v1/procedures").json()}
    name = next(p for p in procs["spawn_vm"]["params"] if p["name"] == "name")
    assert name["max_length"] == 59 and name["pattern"].startswith("^[a-z0-9]")
    spec = server.client(VIEWER).get("/openapi.json").json()
    variants = spec["paths"]["/v1/transactions"]["post"]["requestBody"]["content"]["application/json"]
    spawn = next(v for v in variants["schema"]["oneOf"] if v["title"] == "spawn_vm")
    assert spawn["properties"]["args"]["properties"]["name"]["maxLength"] == 59


# --- paths --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "/v1/resources/compute/us-east/host-01/..",
        "/v1/resources/../..",
        "/v1/resources/compute/./us-east",
        "/v1/resources/compute/%2e%2e",
        "/v1/resources/compute/us%00east",
        "/v1/resources/compute//us-east",
    ],
)
def test_a_resource_path_with_dot_segments_or_control_characters_is_a_json_404(
    server: Server, target: str
) -> None:
    """An HTTP client library resolves ``..`` before sending; a raw request is answered, not resolved."""
    with raw_connection(server.url) as sock:
        sock.sendall(request("GET", target, VIEWER))
        r = read_response(sock)
    assert r.status == 404 and r.headers["content-type"] == "application/json"
    assert "is not a resource path" in r.json()["error"]["message"]


def test_paths_in_queries_and_bodies_are_checked_the_same_way(server: Server) -> None:
    c = server.client(OPERATOR)
    before = txn_count(server)
    for path in ("/compute/..", "/compute/us-east/./host-01", "/compute/\u202e", "/compute/a\nb"):
        r = c.get("/v1/drift", params={"path": path})
        assert r.status_code == 404 and "is not a resource path" in r.json()["error"]["message"], r.text
        for endpoint in ("/v1/reload", "/v1/repair"):
            r = c.post(endpoint, json={"path": path})
            assert r.status_code == 404 and "is not a resource path" in r.json()["error"]["message"], r.text
    assert txn_count(server) == before


def test_the_python_client_refuses_a_dot_segment_instead_of_resolving_it(server: Server) -> None:
    with Client(server.url, VIEWER) as c:
        with pytest.raises(UnknownResource, match="is not a resource path"):
            c.resources("/compute/us-east/host-03/..")
        assert c.resources("/compute/us-east")["kind"] == "region"


# --- body size and order of checks --------------------------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_413_and_the_connection_is_closed(server: Server) -> None:
    before = txn_count(server)
    chunk = b"x" * 65536
    head = (
        "POST /v1/transactions HTTP/1.1\r\nHost: tropic\r\n"
        f"Authorization: Bearer {OPERATOR}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with raw_connection(server.url) as sock:
        sock.sendall(head)
        for _ in range(32):  # up to 2 MiB, no Content-Length; stop once the server has answered
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break  # it answered and closed between the check and the send: the answer is read below
        r = read_response(sock)
    assert r.status == 413 and r.headers["connection"] == "close"
    assert r.json()["error"]["code"] == "too_large"
    assert txn_count(server) == before


@pytest.mark.parametrize("endpoint", ["/v1/transactions", "/v1/plan", "/v1/reload", "/v1/repair"])
def test_authorisation_comes_before_the_body(server: Server, endpoint: str) -> None:
    """A stranger learns nothing about a body (401), a viewer is denied and audited (403) before its body
    is read; only an operator's malformed body is a 400."""
    before = txn_count(server)
    with raw_connection(server.url) as sock:
        for token, status in ((None, 401), ("not-a-valid-token-at-all", 401), (VIEWER, 403), (OPERATOR, 400)):
            sock.sendall(request("POST", endpoint, token, b'{"procedure": "spawn_vm", "args": {'))
            r = read_response(sock)
            assert r.status == status, (token, r.body)
            if status == 401:
                assert "www-authenticate" in r.headers
        # a well-formed body that fails validation: the same order
        sock.sendall(request("POST", endpoint, None, b"[1, 2]"))
        assert read_response(sock).status == 401
    assert txn_count(server) == before


def test_a_denied_call_with_a_malformed_body_is_audited(server: Server) -> None:
    entries_before = len(server.audit.entries(10_000))
    r = server.client(VIEWER).post(
        "/v1/transactions", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 403
    last = server.audit.entries(10_000)[entries_before:]
    assert [(e["who"], e["action"], e["outcome"]) for e in last] == [("vera", "submit", "denied")]


def test_unknown_query_parameters_are_refused_before_the_body(server: Server) -> None:
    r = server.client(OPERATOR).post(
        "/v1/plan", params={"dry": "1"}, content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "unknown query parameter" in r.json()["error"]["message"]


def test_a_valid_call_still_goes_through(server: Server) -> None:
    r = server.client(OPERATOR).post("/v1/plan", json={"procedure": "spawn_vm", "args": spawn_args("ok-1")})
    assert r.status_code == 200 and r.json()["ok"] is True
