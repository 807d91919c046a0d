"""Engine objects as API data: transaction summaries and details, resource subtrees.

Every function here reads controller-owned state, so callers run it on the controller's logical thread
(inside ``controller.call``), where the model and the transaction records hold still.
"""

from __future__ import annotations

from typing import Any

from tropic.errors import UnknownResource
from tropic.model import ROOT, Model
from tropic.model.tree import check_path
from tropic.records.record import Transaction
from tropic.records.states import State

MAX_NODES = 5000  # one resource response never carries more nodes than this


def summary(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "procedure": t.procedure,
        "state": t.state.value,
        "submitter": t.submitter,
        "submitted_at": t.times.get(State.SUBMITTED.value),
        "latency_s": t.latency_s,
        "error": t.error,
    }


def detail(t: Transaction) -> dict[str, Any]:
    out = t.to_dict()
    out["latency_s"] = t.latency_s
    return out


def resource_path(raw: str) -> str:
    """The model path for the URL tail after ``/v1/resources/`` (``""`` is the root)."""
    path = "/" + raw.strip("/") if raw.strip("/") else ROOT
    check_path(path)
    return path


def subtree(model: Model, path: str, depth: int, max_nodes: int = MAX_NODES) -> dict[str, Any]:
    """``path`` with its children to ``depth`` levels, breadth first, at most ``max_nodes`` nodes."""
    node = model.nodes.get(path)
    if node is None:
        raise UnknownResource(f"no resource at {path}", path=path)
    budget = max_nodes - 1
    truncated = False

    def info(p: str) -> dict[str, Any]:
        n = model.nodes[p]
        kids = model.kids.get(p, ())
        return {
            "path": p,
            "name": p.rsplit("/", 1)[1] or "/",
            "kind": n.kind,
            "attrs": dict(n.attrs),
            "child_count": len(kids),
            "children": None,
        }

    root = info(path)
    level = [root]
    for _ in range(depth):
        nxt: list[dict[str, Any]] = []
        for item in level:
            kids = model.children(item["path"])
            if len(kids) > budget:
                truncated = True
                continue
            budget -= len(kids)
            item["children"] = [info(k) for k in kids]
            nxt.extend(item["children"])
        level = nxt
        if not level:
            break
    root["truncated"] = truncated
    return root


def scope_path(raw: str) -> str:
    """A model path from a request body or query (``"/"`` or ``/compute/...``), checked for shape."""
    path = raw if raw == ROOT else "/" + raw.strip("/")
    check_path(path)
    return path
