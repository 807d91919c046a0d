"""Acting through a running server instead of on its store: what the offline commands do with ``--url``.

A store has one owner (:mod:`tropic.owner`); while a server holds it, every other process reads the
server's model and submits its transactions through the server's API, so the server sees and orders
everything. :func:`fetch_model` rebuilds (part of) the server's logical model from ``/v1/resources``;
:class:`ApiRunner` runs plan steps as transactions through ``/v1/transactions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tropic.api.defaults import default_token_file
from tropic.model import ROOT, STANDARD, Model, Node, Schema, parent_of
from tropic.optimize.actuator import StepOutcome
from tropic.optimize.plan import PlannedStep

if TYPE_CHECKING:
    from tropic.api.client import Client

DEPTH = 3  # levels fetched per request: /compute -> region -> host -> VM in one answer


def open_client(url: str, token: str | None = None) -> Client:
    """A client of the server at ``url``: ``token``, else the token file ``tropic serve`` generated."""
    from tropic.api.client import Client  # httpx loads only when a server is used

    if not token:
        path = default_token_file()
        try:
            token = path.read_text(encoding="utf-8").strip() if path.is_file() else None
        except OSError:
            token = None
    return Client(url, token or None)


def fetch_model(client: Client, root: str = "/compute", schema: Schema = STANDARD) -> Model:
    """The server's logical model under ``root`` (with the ancestors of ``root``), as it is now.

    Large subtrees come in several answers (the server caps one answer's size): every node whose children
    did not come with it is fetched on its own. Read between transactions, so it is a view to plan
    from; every change made from it is a transaction the server checks against its own model again."""
    model = Model(schema)
    pending = [root]
    while pending:
        tree = client.resources(pending.pop(), depth=DEPTH)
        stack: list[dict[str, Any]] = [tree]
        while stack:
            item = stack.pop()
            path = str(item["path"])
            _put(model, path, Node(str(item["kind"]), dict(item["attrs"])))
            children = item.get("children")
            if children is None:
                if item.get("child_count"):
                    pending.append(path)
            else:
                stack.extend(children)
    return model


def _put(model: Model, path: str, node: Node) -> None:
    model.nodes[path] = node
    while path != ROOT:
        parent = parent_of(path)
        model.kids.setdefault(parent, set()).add(path.rsplit("/", 1)[1])
        if parent in model.nodes:
            return
        model.nodes[parent] = Node("unknown", {})  # an ancestor outside the fetched subtree
        path = parent


class ApiRunner:
    """Runs each plan step as one transaction on the server and waits for it to end (the server
    simulates, checks, locks and logs it like any other request)."""

    def __init__(self, client: Client, *, timeout_s: float = 120.0) -> None:
        self.client = client
        self.timeout_s = timeout_s

    def run(self, step: PlannedStep) -> StepOutcome:
        # One idempotency key per call: a retried submission never makes a second transaction.
        accepted = self.client.submit(step.procedure, dict(step.args))
        txn_id = int(accepted["id"])
        try:
            detail = self.client.wait(txn_id, timeout=self.timeout_s)
        except TimeoutError:
            return StepOutcome(
                step=step,
                committed=False,
                state=str(self.client.transaction(txn_id)["state"]),
                txn_id=str(txn_id),
                error=f"not final after {self.timeout_s:g} s (the server goes on with it)",
            )
        error = detail.get("error")
        return StepOutcome(
            step=step,
            committed=detail["state"] == "COMMITTED",
            state=str(detail["state"]),
            txn_id=str(detail["id"]),
            error=None if error is None else str(error.get("message", error)),
        )


__all__ = ["ApiRunner", "fetch_model", "open_client"]
