"""Submissions over HTTP: ``POST /v1/transactions`` (one call) and ``POST /v1/transactions:batch`` (up to
:data:`MAX_BATCH_ITEMS` calls, validated together: one bad item refuses the whole batch).

The handlers run on the event loop and never hold a thread while a submission becomes durable: the call is
validated once (here; the controller takes it as checked), queued, and its durable acceptance is awaited
as a future that the controller's logical thread resolves after the group commit that stored it
(:class:`Acceptances`). Concurrent requests therefore share group commits, and an idempotency key locks
only itself while its transaction is queued (:class:`~tropic.api.idempotency.KeyLocks`). The audit log's
accepted entries are written by the audit log's writer thread while the store commits, with one fsync
shared by the concurrent requests (:meth:`~tropic.api.audit.AuditLog.record_later`).
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.
import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, Response
from starlette.concurrency import run_in_threadpool

from tropic.api.audit import AuditLog
from tropic.api.auth import Principal
from tropic.api.errors import ApiProblem, error_responses
from tropic.api.idempotency import MAX_KEY_LENGTH, IdempotencyCache, KeyReused, fingerprint
from tropic.api.models import MAX_SAFE_INT, Accepted, BatchAccepted, BatchCall, ProcedureCall
from tropic.errors import InvalidArguments, StoreError, TropicError
from tropic.model import Value
from tropic.procedures import Procedure
from tropic.records.record import Transaction
from tropic.txn.controller import Controller

MAX_BATCH_ITEMS = 1000
Call = tuple[Procedure, dict[str, Value], str | None]  # a validated call and its idempotency key
ACCEPT_TIMEOUT_S = 30.0  # a submission not stored by then is answered 503 (it may still be stored later)


def checked_args(proc: Procedure, args: Mapping[str, Value]) -> dict[str, Value]:
    """The procedure's own validation, plus what JSON and the records need: ``100.0`` is the integer 100
    (JSON has one number type), and values a record cannot carry faithfully are refused."""
    ints = {p.name for p in proc.params if p.type is int}
    normal = {
        k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in args.items()
    }
    clean = proc.validate(normal)
    for name, v in clean.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidArguments(f"{proc.name}: argument {name!r} must be a finite number, got {v!r}")
        if isinstance(v, int) and not isinstance(v, bool) and not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
            raise InvalidArguments(
                f"{proc.name}: argument {name!r} is outside the safe integer range -(2**53-1)..2**53-1"
            )
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArguments(f"{proc.name}: argument {name!r} is not valid Unicode text") from None
    return clean


def prepare(controller: Controller, call: ProcedureCall) -> tuple[Procedure, dict[str, Value]]:
    """The procedure and clean arguments of ``call`` (text arguments read as their declared types)."""
    proc = controller.registry.get(call.procedure)
    args = proc.from_text(call.args) if call.text_args else call.args
    return proc, checked_args(proc, args)


@dataclass(slots=True, eq=False)
class _Waiter:
    """One request waiting for its submissions to be stored."""

    txns: Sequence[Transaction]
    left: set[int]
    done: asyncio.Future[None]
    deadline: float


class Acceptances:
    """Requests waiting for their submissions to be durable, answered on the event loop when the logical
    thread announces the group commit that stored them (no thread waits meanwhile). One watchdog task
    (while anyone waits) fails the waiters when the controller cannot store any more, or after a timeout."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[int, list[_Waiter]] = {}
        self._waiters: set[_Waiter] = set()
        self._watchdog: asyncio.Task[None] | None = None
        controller.on_accepted(self._heard)

    def _heard(self, txns: Sequence[Transaction]) -> None:
        # On the logical thread. A waiter registered after this check finds ``accepted`` already set.
        waiting = self._waiting
        ids = [t.id for t in txns if t.id in waiting]
        loop = self._loop
        if ids and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._resolve, ids)

    def _resolve(self, ids: list[int]) -> None:
        for i in ids:
            for w in self._waiting.pop(i, ()):
                w.left.discard(i)
                if not w.left and not w.done.done():
                    w.done.set_result(None)

    async def wait(self, txns: Sequence[Transaction], timeout: float = ACCEPT_TIMEOUT_S) -> None:
        """Return once every one of ``txns`` is in the store; :class:`StoreError` after ``timeout``, and
        the controller's own error if it stops meanwhile."""
        pending = [t for t in txns if not t.accepted]
        if not pending:
            return
        loop = self._loop = asyncio.get_running_loop()
        w = _Waiter(pending, {t.id for t in pending}, loop.create_future(), time.monotonic() + timeout)
        for t in pending:
            self._waiting.setdefault(t.id, []).append(w)
        w.left.difference_update(t.id for t in pending if t.accepted)  # announced before we registered
        if not w.left:
            w.done.set_result(None)
        self._waiters.add(w)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())
        try:
            await w.done
        finally:
            self._waiters.discard(w)
            for t in pending:
                ws = self._waiting.get(t.id)
                if ws is not None and w in ws:
                    ws.remove(w)
                    if not ws:
                        del self._waiting[t.id]

    async def _watch(self) -> None:
        while self._waiters:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for w in list(self._waiters):
                if w.done.done():
                    continue
                try:
                    self.controller.check_accepting(w.txns)
                    if now >= w.deadline:
                        missing = [t.id for t in w.txns if not t.accepted]
                        raise StoreError(f"transaction(s) {missing} were not stored in time")
                except TropicError as e:
                    w.done.set_exception(e)


@dataclass(slots=True)
class Outcome:
    """One submitted call: its transaction (None when its key was reused for another request)."""

    txn: Transaction | None
    replayed: bool = False
    reused_by: int | None = None  # with a reused key: the earlier transaction

    def answer(self) -> dict[str, Any]:
        if self.txn is None:
            message = (
                f"Idempotency-Key was already used for a different request (transaction {self.reused_by})"
            )
            return {"error": {"code": "idempotency_key_reused", "message": message, "txn": self.reused_by}}
        return {"id": self.txn.id, "state": self.txn.state.value, "replayed": self.replayed}


class Submitter:
    """Queues validated calls (with or without idempotency keys), awaits their durability, audits them."""

    def __init__(self, controller: Controller, keys: IdempotencyCache, audit: AuditLog) -> None:
        self.controller = controller
        self.keys = keys
        self.audit = audit
        self.acceptances = Acceptances(controller)

    def _queue(self, who: Principal, calls: Sequence[Call]) -> list[Outcome]:
        """Queue ``calls`` (not yet durable): unkeyed ones together, each keyed one under its key's lock."""
        c = self.controller
        out: list[Outcome | None] = [None] * len(calls)
        plain = [i for i, (_, _, key) in enumerate(calls) if key is None]
        if plain:
            txns = c.submit_many(
                [(calls[i][0].name, calls[i][1]) for i in plain], submitter=who.name, checked=True
            )
            for i, t in zip(plain, txns, strict=True):
                out[i] = Outcome(t)
        for i, (proc, args, key) in enumerate(calls):
            if key is None:
                continue

            def create(binding: tuple[str, str], name: str = proc.name, a: dict[str, Value] = args) -> int:
                return c.submit(name, a, submitter=who.name, key=binding, checked=True).id

            try:
                txn_id, replayed = self.keys.run(who.name, key, fingerprint(proc.name, args), create)
            except KeyReused as e:
                out[i] = Outcome(None, reused_by=e.txn_id)
                continue
            out[i] = Outcome(c.get(txn_id), replayed)
        return [o for o in out if o is not None]

    async def submit(self, who: Principal, calls: Sequence[Call]) -> list[Outcome]:
        """Queue ``calls``, then answer once every new one is durable and audited. The accepted entries
        are written while the store commits (not after it): should the store fail to take them, a
        ``refused`` entry for each follows."""
        try:
            if self.keys.blocking and any(key is not None for _, _, key in calls):
                outcomes = await run_in_threadpool(self._queue, who, calls)
            else:
                outcomes = self._queue(who, calls)
        except TropicError as e:
            await self.refused(who, [{"procedure": proc.name} for proc, _, _ in calls], e)
            raise
        details = [
            {"txn": o.txn.id, "procedure": o.txn.procedure, "args": args}
            for o, (_, args, _) in zip(outcomes, calls, strict=True)
            if o.txn is not None and not o.replayed
        ]
        audited = asyncio.wrap_future(self.audit.record_later(who, "submit", "accepted", details))
        try:
            await self.acceptances.wait([o.txn for o in outcomes if o.txn is not None])
        except TropicError as e:
            await audited
            await self.refused(who, [{"txn": d["txn"], "procedure": d["procedure"]} for d in details], e)
            raise
        await audited
        return outcomes

    async def refused(self, who: Principal, items: Sequence[Mapping[str, Any]], e: TropicError) -> None:
        details = [{**item, "error": e.code} for item in items]
        await asyncio.wrap_future(self.audit.record_later(who, "submit", "refused", details))


def _json(status: int, content: Any, headers: Mapping[str, str] | None = None) -> Response:
    # The answers are built here, already valid: no response-model round trip on the hot path.
    return Response(orjson.dumps(content), status, headers=headers, media_type="application/json")


def add_submission_routes(
    app: FastAPI,
    submitter: Submitter,
    Operator: Any,
    call_body: dict[str, Any],
    batch_body: dict[str, Any],
) -> None:
    """Register the two submission endpoints on ``app`` (its routes are gated: auth before the body)."""
    controller = submitter.controller
    auth_errors = (401, 403)

    @app.post(
        "/v1/transactions",
        tags=["transactions"],
        status_code=202,
        response_model=Accepted,
        responses=error_responses(400, *auth_errors, 409, 413, 422, 503),
        openapi_extra=call_body,
    )
    async def submit(
        call: ProcedureCall,
        who: Operator,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=MAX_KEY_LENGTH,
                description="Retrying with the same key returns the first transaction instead of a new one.",
            ),
        ] = None,
    ) -> Response:
        """Queue a transaction of a registered procedure. Arguments are checked against the procedure's
        declared types before anything is recorded; the answer comes once the submission is durable."""
        try:
            proc, args = prepare(controller, call)
        except TropicError as e:
            await submitter.refused(who, [{"procedure": call.procedure}], e)
            raise
        (out,) = await submitter.submit(who, [(proc, args, idempotency_key)])
        if out.txn is None:
            raise ApiProblem(409, "idempotency_key_reused", out.answer()["error"]["message"])
        return _json(202, out.answer(), {"Location": f"/v1/transactions/{out.txn.id}"})

    @app.post(
        "/v1/transactions:batch",
        tags=["transactions"],
        status_code=202,
        response_model=BatchAccepted,
        responses=error_responses(400, *auth_errors, 404, 413, 422, 503),
        openapi_extra=batch_body,
    )
    async def submit_batch(body: BatchCall, who: Operator) -> Response:
        """Queue up to 1000 transactions in one request. Every item is validated first: one bad item
        refuses the whole batch (422, the message names it: ``item N: ...``) and nothing is recorded.
        Each item may carry its own idempotency ``key``. The answer, once every new transaction is
        durable, has one entry per item, in order: the transaction, or the item's key-reuse error."""
        calls: list[Call] = []
        for i, item in enumerate(body.items):
            try:
                proc, args = prepare(controller, item)
            except TropicError as e:
                e.message = f"item {i}: {e.message}"
                e.args = (e.message,)
                await submitter.refused(who, [{"procedure": item.procedure}], e)
                raise
            calls.append((proc, args, item.key))
        outcomes = await submitter.submit(who, calls)
        return _json(202, {"items": [o.answer() for o in outcomes]})
