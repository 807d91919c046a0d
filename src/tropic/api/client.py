"""A typed Python client of the REST API (httpx); the CLI's remote commands are a thin shell over it.

Submissions carry an idempotency key generated per call, so the retry policy can safely resend a
submission whose answer was lost (timeout, dropped connection): the server returns the first transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tropic.api.defaults import DEFAULT_URL
from tropic.errors import ConfigError, TropicError
from tropic.model.names import check_path
from tropic.records.states import FINAL
from tropic.retry import NO_RETRY as NO_RETRY
from tropic.retry import RetryPolicy as RetryPolicy

MAX_BATCH = 1000  # calls in one POST /v1/transactions:batch (the server's limit)
FINAL_STATES = frozenset(s.value for s in FINAL)
# Transport failures only (see Client._send): a few quick attempts within 30 s.
DEFAULT_RETRY = RetryPolicy(attempts=3, backoff_s=0.2, max_backoff_s=2.0, jitter=0.25, deadline_s=30.0)


class ApiError(TropicError):
    """The server refused a request; ``status`` is the HTTP status and ``code`` the server's error code."""

    code = "api_error"

    def __init__(self, status: int, error: Mapping[str, Any]) -> None:
        super().__init__(str(error.get("message") or f"HTTP {status}"), path=error.get("path"))
        self.status = status
        self.error = dict(error)
        self.code = str(error.get("code", "api_error"))


class ServerUnreachable(TropicError):
    """No answer from the server (not running, wrong URL, network down)."""

    code = "unreachable"


@dataclass(slots=True)
class Event:
    kind: str
    id: int | None
    data: dict[str, Any]


class Client:
    """One server, one token. Methods return the API's JSON; errors raise :class:`ApiError` or
    :class:`ServerUnreachable` (both :class:`~tropic.errors.TropicError`)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = server_url(url)
        headers = {"Accept": "application/json", "User-Agent": "tropic-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.retry = retry
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        policy = retry or self.retry
        clean = {k: v for k, v in (params or {}).items() if v is not None}

        def attempt() -> httpx.Response:
            return self._http.request(method, path, json=body, params=clean, headers=headers)

        try:
            # Only transport failures are retried: an HTTP error is the server's answer.
            r = policy.call(attempt, retry_on=(httpx.TransportError,))
        except httpx.TransportError as e:
            raise ServerUnreachable(f"no answer from {self.url}: {_describe(e)}") from None
        if r.status_code >= 400:
            raise ApiError(r.status_code, _error_of(r))
        return r

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        r = self._send(method, path, **kw)
        try:
            return r.json()
        except ValueError:
            raise ApiError(
                r.status_code, {"code": "bad_response", "message": "the server did not answer JSON"}
            ) from None

    # --- the API -----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}`` (or ``"stopped"``); needs no token."""
        try:
            resp = self._http.get("/healthz")
        except httpx.TransportError as e:
            raise ServerUnreachable(f"no answer from {self.url}: {_describe(e)}") from None
        return dict(resp.json())

    def whoami(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/whoami"))

    def procedures(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/procedures"))

    def submit(
        self,
        procedure: str,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        text_args: bool = False,
    ) -> dict[str, Any]:
        """Queue a transaction; returns ``{"id", "state", "replayed"}``. Safe to retry: one key per call.
        ``text_args``: string values are text the server reads as the declared types (``"4"`` -> 4)."""
        key = idempotency_key or uuid.uuid4().hex
        body: dict[str, Any] = {"procedure": procedure, "args": dict(args or {})}
        if text_args:
            body["text_args"] = True
        return dict(self._json("POST", "/v1/transactions", body=body, headers={"Idempotency-Key": key}))

    def submit_many(
        self,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        keys: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Queue several transactions with ``POST /v1/transactions:batch`` (in requests of at most
        :data:`MAX_BATCH` calls); returns one answer per call, in order. Every call carries an idempotency
        key (``keys``, or fresh ones), so a retried request creates nothing twice. A bad call refuses its
        whole request (:class:`ApiError` 422, naming the item); an answer with ``"error"`` is a call whose
        key was used before for another request."""
        if keys is not None and len(keys) != len(calls):
            raise ValueError("keys must match calls one to one")
        out: list[dict[str, Any]] = []
        for start in range(0, len(calls), MAX_BATCH):
            chunk = calls[start : start + MAX_BATCH]
            items = [
                {
                    "procedure": procedure,
                    "args": dict(args),
                    "key": keys[start + i] if keys is not None else uuid.uuid4().hex,
                }
                for i, (procedure, args) in enumerate(chunk)
            ]
            answer = self._json("POST", "/v1/transactions:batch", body={"items": items})
            out.extend(dict(a) for a in answer["items"])
        return out

    def plan(
        self, procedure: str, args: Mapping[str, Any] | None = None, *, text_args: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"procedure": procedure, "args": dict(args or {})}
        if text_args:
            body["text_args"] = True
        return dict(self._json("POST", "/v1/plan", body=body))

    def transactions(
        self,
        *,
        state: str | None = None,
        procedure: str | None = None,
        limit: int = 50,
        before: int | None = None,
        path: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any]:
        """One page of transactions, newest first; page on with ``before=page["next_before"]``."""
        params = {
            "state": state,
            "procedure": procedure,
            "limit": limit,
            "before": before,
            "path": path,
            "since": since,
            "until": until,
        }
        return dict(self._json("GET", "/v1/transactions", params=params))

    def transaction(self, txn_id: int) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/transactions/{int(txn_id)}"))

    def kill(self, txn_id: int) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/transactions/{int(txn_id)}/kill", retry=NO_RETRY))

    def resources(self, path: str = "/", *, depth: int = 1) -> dict[str, Any]:
        # Checked here: the URL would resolve a ".." segment into another resource, or off the API.
        check_path("/" + path.strip("/"))
        tail = quote(path.strip("/"), safe="/")
        return dict(
            self._json("GET", f"/v1/resources/{tail}" if tail else "/v1/resources", params={"depth": depth})
        )

    def host_liveness(self, host: str) -> dict[str, Any]:
        """Does compute host ``host``'s device answer (``alive``), and its model state (``failed``...)."""
        return dict(self._json("GET", "/v1/host-liveness", params={"host": host}))

    def listing(
        self,
        what: str,
        *,
        selector: str | None = None,
        region: str | None = None,
        host: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page of ``vms``, ``hosts`` or ``regions`` (rows with capacity; ``selector``: labels)."""
        if what not in ("vms", "hosts", "regions"):
            raise ValueError(f"cannot list {what!r}: vms, hosts or regions")
        params = {"selector": selector, "region": region, "host": host, "after": after, "limit": limit}
        return dict(self._json("GET", f"/v1/{what}", params=params))

    def describe(self, ref: str, *, txns: int | None = None) -> dict[str, Any]:
        """One resource (a path, a VM's name, region/name or uid, a region's or host's name) with its
        capacity, children and the transactions that acted on it."""
        return dict(self._json("GET", "/v1/describe", params={"ref": ref, "txns": txns}))

    def images(self, name: str = "") -> list[dict[str, Any]]:
        """The image catalog, or one image's versions (``GET /v1/images[/{name}/versions]``)."""
        where = f"/v1/images/{quote(name, safe='')}/versions" if name else "/v1/images"
        return list(self._json("GET", where)["items"])

    def members(self, service: str) -> list[dict[str, Any]]:
        """A service's members with their public addresses (``GET /v1/services/{name}/members``)."""
        return list(self._json("GET", f"/v1/services/{quote(service, safe='')}/members")["items"])

    def drift(self, path: str = "/", *, scan: bool = True) -> dict[str, Any]:
        """Drift between the model and the devices under ``path`` (a fresh scan, or the recorded drift)."""
        return dict(self._json("GET", "/v1/drift", params={"path": path, "scan": str(scan).lower()}))

    def reload(self, path: str) -> dict[str, Any]:
        """Make the model match the devices under ``path`` (device -> model)."""
        return dict(self._json("POST", "/v1/reload", body={"path": path}))

    def repair(self, path: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Make the devices match the model under ``path`` with compensating transactions."""
        return dict(self._json("POST", "/v1/repair", body={"path": path, "timeout": timeout}))

    def discover(self) -> dict[str, Any]:
        """The inventory document of the devices the server drives, with its unmanaged objects."""
        return dict(self._json("GET", "/v1/discover"))

    def unmanaged(self, *, include_ignored: bool = False) -> dict[str, Any]:
        """Device objects the server's model does not know."""
        return dict(self._json("GET", "/v1/unmanaged", params={"all": str(include_ignored).lower()}))

    def adopt(self, paths: list[str]) -> dict[str, Any]:
        """Adopt unmanaged objects into the model (a reload of each)."""
        return dict(self._json("POST", "/v1/unmanaged/adopt", body={"paths": paths}))

    def ignore(self, paths: list[str]) -> dict[str, Any]:
        """Have the server leave unmanaged objects alone (persisted)."""
        return dict(self._json("POST", "/v1/unmanaged/ignore", body={"paths": paths}))

    def stats(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/stats"))

    def observations(self, **query: Any) -> list[dict[str, Any]]:
        """The autopilot's stored readings (``subject``, ``metric``, ``since``, ``until``, ``limit``)."""
        params = {k: v for k, v in query.items() if v is not None}
        return list(self._json("GET", "/v1/autopilot/observations", params=params)["items"])

    def metrics(self) -> str:
        return self._send("GET", "/metrics").text

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/audit", params={"limit": limit}))

    def wait(self, txn_id: int, *, timeout: float | None = 60.0, poll_s: float = 0.1) -> dict[str, Any]:
        """Poll until the transaction is final; returns its detail. TimeoutError when it is not in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            detail = self.transaction(txn_id)
            if detail["state"] in FINAL_STATES:
                return detail
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"transaction {txn_id} still {detail['state']} after {timeout} s")
            time.sleep(poll_s)

    def events(self, *, txn: int | None = None, last_event_id: int | None = None) -> Iterator[Event]:
        """The live event stream (server-sent events), until the server ends it or the caller stops."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        params = {"txn": txn} if txn is not None else {}
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with self._http.stream("GET", "/v1/events", params=params, headers=headers, timeout=timeout) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ApiError(r.status_code, _error_of(r))
                yield from parse_sse(r.iter_lines())
        except httpx.TransportError as e:
            raise ServerUnreachable(f"event stream from {self.url} ended: {_describe(e)}") from None


def server_url(url: str) -> str:
    """``url`` checked to be an http(s) server address (ConfigError naming it otherwise), without a
    trailing slash."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise ConfigError(f"{url!r} is not a valid URL ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{url!r} is not a server URL: expected http://HOST:PORT or https://HOST:PORT")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"{url!r} is not a server URL: port {parsed.port} is outside 1..65535")
    return url.rstrip("/")


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream of lines (comments and pings skipped)."""
    kind, data, ident = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"raw": "\n".join(data)}
                yield Event(kind, ident, payload if isinstance(payload, dict) else {"value": payload})
            kind, data, ident = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            ident = int(value)


def _error_of(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {"code": f"http_{r.status_code}", "message": f"HTTP {r.status_code} {r.reason_phrase}"}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return {"code": f"http_{r.status_code}", "message": f"HTTP {r.status_code} {r.reason_phrase}"}


def _describe(e: httpx.TransportError) -> str:
    if isinstance(e, httpx.ConnectError):
        return "connection refused or host unreachable (is `tropic serve` running?)"
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    return type(e).__name__
