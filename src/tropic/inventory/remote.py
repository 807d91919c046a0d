"""Plan and apply an inventory against a running server, through its API: read the model
(``GET /v1/resources``), compute the difference (:mod:`tropic.inventory.diff`), and run each change as a
transaction of the fleet procedures, in order, stopping at the first that does not commit."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tropic.api.client import ApiError, Client
from tropic.errors import ConfigError, UnknownResource
from tropic.inventory.diff import Call, Change, calls_in_order, diff
from tropic.inventory.load import Inventory

# How deep each tree goes: /compute/<region>/<host>/<vm>, /storage/<region>/<san>/<image>, /network/<net>/<r>
ROOTS = (("/compute", 3), ("/storage", 3), ("/network", 2), ("/jobs", 1))


def fetch_tree(client: Client) -> dict[str, tuple[str, dict[str, Any]]]:
    """The server's model under /compute, /storage and /network, read in as many requests as the API's
    per-response limit needs."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}

    def walk(path: str, levels: int) -> None:
        top = client.resources(path, depth=levels)
        todo: list[tuple[dict[str, Any], int]] = [(top, 0)]
        while todo:
            node, depth = todo.pop()
            out[node["path"]] = (node["kind"], dict(node["attrs"]))
            kids = node.get("children")
            if kids is None:
                if node.get("child_count") and depth < levels:
                    if node is top:
                        raise ConfigError(f"{path} has too many children to read through the API")
                    walk(node["path"], levels - depth)
                continue
            todo.extend((kid, depth + 1) for kid in kids)

    for root, levels in ROOTS:
        try:
            walk(root, levels)
        except (ApiError, UnknownResource) as e:
            if root != "/jobs" or (isinstance(e, ApiError) and e.status != 404):
                raise  # (no /jobs: no job was ever declared)
    return out


def plan(client: Client, inv: Inventory, *, vms: bool = False) -> list[Change]:
    """The changes that would make the server's model match ``inv``."""
    procedures = {p["name"] for p in client.procedures()}
    return diff(inv, fetch_tree(client), vms=vms, procedures=procedures)


@dataclass(slots=True)
class Step:
    """One transaction of an apply: the change it belongs to, the call, and how it ended."""

    change: Change
    call: Call
    txn: int | None = None
    state: str = "NOT_RUN"
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.change.path,
            "op": self.change.op,
            "procedure": self.call.procedure,
            "args": self.call.args,
            "txn": self.txn,
            "state": self.state,
            "error": self.error,
        }


@dataclass(slots=True)
class Outcome:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.state not in ("COMMITTED", "NOT_RUN")), None)

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "ok": failed is None,
            "steps": [s.to_dict() for s in self.steps],
            "failed": None if failed is None else failed.to_dict(),
        }


def apply(
    client: Client,
    changes: list[Change],
    *,
    timeout: float = 300.0,
    progress: Callable[[Step], None] | None = None,
) -> Outcome:
    """Run the applicable changes' calls as transactions, in phase order, one at a time; stop at the first
    that does not commit (later changes may depend on it)."""
    out = Outcome([Step(change, call) for change, call in calls_in_order(changes)])
    for step in out.steps:
        if step.call.procedure == "create_job":  # through /v1/jobs: the server adds its ZooKeeper
            body = {**step.call.args, "program": json.loads(step.call.args["program"]), "timeout": timeout}
            step.txn = int(client._json("POST", "/v1/jobs", body=body)["txn"]["id"])
        else:
            answer = client.submit(step.call.procedure, step.call.args)
            step.txn = int(answer["id"])
        detail = client.wait(step.txn, timeout=timeout)
        step.state = str(detail["state"])
        step.error = detail.get("error")
        if progress is not None:
            progress(step)
        if step.state != "COMMITTED":
            break
    return out
