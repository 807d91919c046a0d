"""Operator views of the model: VMs, hosts and regions as rows with their capacity (used and free), label
selectors, and the description of one resource with the transactions that touched it.

The row builders read controller-owned state, so callers run them on the controller's logical thread
(inside ``controller.call``), like :mod:`tropic.api.views`. A host's use comes from the model's index
(:mod:`tropic.model.index`), so a page costs what it shows, not the number of VMs below it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tropic.api.geo_views import members_of
from tropic.errors import InvalidArguments, UnknownResource
from tropic.model import VM, Model, Node
from tropic.model.tree import check_path
from tropic.records.query import TxnQuery
from tropic.records.record import Transaction
from tropic.txn.controller import Controller

COMPUTE = "/compute"
MAX_ROWS = 5000  # one page never carries more rows than this
DEFAULT_ROWS = 500
DESCRIBE_TXNS = 20  # transactions shown by a description
_HISTORY_PAGE = 100  # candidates read per path while looking for them
_MAX_HOPS = 8  # earlier paths of a migrated VM followed back


# --- label selectors ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=" or "exists"
    value: str = ""

    def holds(self, labels: dict[str, Any]) -> bool:
        if self.op == "exists":
            return self.key in labels
        has = self.key in labels and str(labels[self.key]) == self.value
        return has if self.op == "=" else not has


def parse_selector(text: str | None) -> tuple[Requirement, ...]:
    """``key=value,key!=value,key`` (every requirement must hold, as kubectl's ``-l``)."""
    if not text:
        return ()
    out: list[Requirement] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if "!=" in part:
            key, value = part.split("!=", 1)
            op = "!="
        elif "=" in part:
            key, value = part.split("=", 1)
            op = "="
            if value.startswith("="):  # key==value
                value = value[1:]
        else:
            key, value, op = part, "", "exists"
        key = key.strip()
        if not key or any(c in key for c in " \t=!"):
            raise InvalidArguments(
                f"selector {text!r}: {part!r} is not key=value, key!=value or key (several: comma-separated)"
            )
        out.append(Requirement(key, op, value.strip()))
    return tuple(out)


def matches(labels: Any, selector: tuple[Requirement, ...]) -> bool:
    found = labels if isinstance(labels, dict) else {}
    return all(r.holds(found) for r in selector)


# --- rows ------------------------------------------------------------------------------------------------
def _kids(model: Model, path: str, kind: str) -> Iterator[tuple[str, Node]]:
    for p in model.children(path):
        node = model.nodes.get(p)
        if node is not None and node.kind == kind:
            yield p, node


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 3)


def vm_row(path: str, node: Node) -> dict[str, Any]:
    a = node.attrs
    parts = path.split("/")
    return {
        "path": path,
        "name": parts[-1],
        "region": parts[2] if len(parts) > 4 else "",
        "host": parts[3] if len(parts) > 4 else "",
        "state": a.get("state", ""),
        "vcpus": a.get("vcpus", 0),
        "memory_mib": a.get("memory_mib", 0),
        "uid": a.get("uid", ""),
        "image": a.get("image", ""),
        "volume": a.get("volume", ""),
        "labels": dict(a.get("labels") or {}),
    }


def capacity(cpus: int, memory_mib: int, limit_vcpus: float, used: tuple[int, int, int]) -> dict[str, Any]:
    vcpus, mem, count = used
    return {
        "cpus": cpus,
        "vcpu_limit": _number(limit_vcpus),
        "memory_mib": memory_mib,
        "vcpus_used": vcpus,
        "memory_used_mib": mem,
        "vcpus_free": _number(limit_vcpus - vcpus),
        "memory_free_mib": memory_mib - mem,
        "vms": count,
    }


def host_row(model: Model, path: str, node: Node) -> dict[str, Any]:
    a = node.attrs
    cpus, mem = int(a.get("cpus", 0)), int(a.get("memory_mib", 0))
    limit = cpus * float(a.get("cpu_overcommit", 1.0))
    return {
        "path": path,
        "name": path.rsplit("/", 1)[1],
        "region": path.split("/")[2] if path.count("/") >= 3 else "",
        **capacity(cpus, mem, limit, model.index.used(path)),
        "cpu_overcommit": a.get("cpu_overcommit", 1.0),
        "cordoned": bool(a.get("cordoned", False)),
        "driver": a.get("driver", ""),
        "failure_domain": a.get("failure_domain", ""),
        "uri": a.get("uri", ""),
        "labels": dict(a.get("labels") or {}),
    }


def region_row(model: Model, path: str, node: Node) -> dict[str, Any]:
    a = node.attrs
    cpus = mem = vcpus = used_mem = vms = hosts = 0
    limit = 0.0
    for host, h in _kids(model, path, "host"):
        hosts += 1
        c, m = int(h.attrs.get("cpus", 0)), int(h.attrs.get("memory_mib", 0))
        cpus += c
        mem += m
        limit += c * float(h.attrs.get("cpu_overcommit", 1.0))
        u = model.index.used(host)
        vcpus, used_mem, vms = vcpus + u[0], used_mem + u[1], vms + u[2]
    return {
        "path": path,
        "name": path.rsplit("/", 1)[1],
        "location": a.get("location", ""),
        "timezone": a.get("timezone", ""),
        "provider": a.get("provider", ""),
        "labels": dict(a.get("labels") or {}),
        "hosts": hosts,
        **capacity(cpus, mem, limit, (vcpus, used_mem, vms)),
    }


def _key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _page(rows: list[dict[str, Any]], limit: int, more: bool) -> dict[str, Any]:
    return {"items": rows, "next_after": rows[-1]["path"] if more and rows else None}


def _region_paths(model: Model, region: str | None) -> list[str]:
    if region is None:
        return [p for p, _ in _kids(model, COMPUTE, "region")]
    path = f"{COMPUTE}/{region}"
    node = model.nodes.get(path)
    if node is None or node.kind != "region":
        raise UnknownResource(f"no region {region!r} (at {path})", path=path)
    return [path]


def list_vms(
    model: Model,
    selector: tuple[Requirement, ...] = (),
    *,
    region: str | None = None,
    host: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_ROWS,
) -> dict[str, Any]:
    """VMs in path order from after ``after`` (a cursor: the last path of the previous page)."""
    start = _key(after) if after else ()
    rows: list[dict[str, Any]] = []
    for rpath in _region_paths(model, region):
        for hpath, _ in _kids(model, rpath, "host"):
            if host is not None and hpath.rsplit("/", 1)[1] != host:
                continue
            hk = _key(hpath)
            if start and hk < start[: len(hk)]:
                continue  # the whole host is before the cursor
            for vpath, vnode in _kids(model, hpath, VM.kind):
                if start and _key(vpath) <= start:
                    continue
                if not matches(vnode.attrs.get("labels"), selector):
                    continue
                if len(rows) == limit:
                    return _page(rows, limit, True)
                rows.append(vm_row(vpath, vnode))
    return _page(rows, limit, False)


def list_hosts(
    model: Model,
    selector: tuple[Requirement, ...] = (),
    *,
    region: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_ROWS,
) -> dict[str, Any]:
    start = _key(after) if after else ()
    rows: list[dict[str, Any]] = []
    for rpath in _region_paths(model, region):
        for hpath, hnode in _kids(model, rpath, "host"):
            if start and _key(hpath) <= start:
                continue
            if not matches(hnode.attrs.get("labels"), selector):
                continue
            if len(rows) == limit:
                return _page(rows, limit, True)
            rows.append(host_row(model, hpath, hnode))
    return _page(rows, limit, False)


def list_regions(model: Model, selector: tuple[Requirement, ...] = ()) -> dict[str, Any]:
    rows = [
        region_row(model, p, n)
        for p, n in _kids(model, COMPUTE, "region")
        if matches(n.attrs.get("labels"), selector)
    ]
    return _page(rows, len(rows), False)


# --- describe ----------------------------------------------------------------------------------------------
def find(model: Model, ref: str) -> str:
    """The path ``ref`` designates: a path; a VM's name, region/name or uid; a region's name; a host's
    name (unique among hosts) or region/host."""
    ref = ref.strip()
    if not ref:
        raise InvalidArguments("give a resource path or name")
    if ref.startswith("/"):
        path = "/" + ref.strip("/") if ref.strip("/") else "/"
        check_path(path)
        if path not in model.nodes:
            raise UnknownResource(f"no resource at {path}", path=path)
        return path
    try:
        return model.reader().resolve(ref, VM).path
    except UnknownResource:
        pass
    candidates: list[str] = []
    if "/" not in ref:
        region = f"{COMPUTE}/{ref}"
        if region in model.nodes:
            return region
        candidates = [f"{r}/{ref}" for r, _ in _kids(model, COMPUTE, "region")]
    elif ref.count("/") == 1:
        candidates = [f"{COMPUTE}/{ref}"]
    hosts = [p for p in candidates if p in model.nodes and model.nodes[p].kind == "host"]
    if len(hosts) == 1:
        return hosts[0]
    if len(hosts) > 1:
        raise InvalidArguments(
            f"host name {ref!r} is used in several regions: {', '.join(hosts)}; give region/host"
        )
    raise UnknownResource(f"no VM, host or region called {ref!r} (give a path, a name, region/name or a uid)")


def describe(model: Model, path: str) -> dict[str, Any]:
    """A resource's kind and attributes, its capacity (hosts and regions; a VM: its host's), and a
    summary of its children."""
    node = model.nodes.get(path)
    if node is None:
        raise UnknownResource(f"no resource at {path}", path=path)
    kids = model.children(path)
    by_kind: dict[str, int] = {}
    for k in kids:
        kind = model.nodes[k].kind
        by_kind[kind] = by_kind.get(kind, 0) + 1
    out: dict[str, Any] = {
        "path": path,
        "name": path.rsplit("/", 1)[1] or "/",
        "kind": node.kind,
        "attrs": dict(node.attrs),
        "capacity": None,
        "children": {
            "count": len(kids),
            "by_kind": by_kind,
            "first": [k.rsplit("/", 1)[1] for k in kids[:20]],
        },
        "transactions": [],
    }
    if node.kind == "host":
        out["capacity"] = {k: v for k, v in host_row(model, path, node).items() if k in _CAPACITY}
    elif node.kind == "region":
        out["capacity"] = {k: v for k, v in region_row(model, path, node).items() if k in _CAPACITY}
    elif node.kind == VM.kind:
        host = path.rsplit("/", 1)[0]
        hnode = model.nodes.get(host)
        if hnode is not None and hnode.kind == "host":
            out["capacity"] = {k: v for k, v in host_row(model, host, hnode).items() if k in _CAPACITY}
            out["capacity"]["of"] = host
    elif node.kind == "service":
        out["members"] = members_of(model, path)  # with their public addresses
    return out


_CAPACITY = frozenset(capacity(0, 0, 0.0, (0, 0, 0)))


def _relevant(t: Transaction, path: str, uid: str) -> bool:
    """Whether ``t`` acted on ``path`` itself (not only near it), or on the VM with ``uid``."""
    if any(isinstance(v, str) and v in (path, uid) for v in t.args.values() if v):
        return True
    for a in t.actions:
        if a.path == path or path in a.touches:
            return True
        if uid and a.args.get("uid") == uid:
            return True
    return False


def history(
    controller: Controller, path: str, uid: str = "", limit: int = DESCRIBE_TXNS
) -> list[Transaction]:
    """The newest transactions that acted on ``path`` (for a VM: also on it at its earlier paths, followed
    back through its migrations, and those naming its uid). Reads pages of the history filtered by path,
    then each candidate's full record (the action log) to keep only those that acted on the resource."""
    found: dict[int, Transaction] = {}
    todo: list[tuple[str, int | None]] = [(path, None)]
    seen: set[str] = set()
    hops = 0
    while todo and hops < _MAX_HOPS:
        where, before = todo.pop()
        if where in seen:
            continue
        seen.add(where)
        hops += 1
        host, name = where.rsplit("/", 1)
        for summary in controller.history(TxnQuery(path=where, before=before, limit=_HISTORY_PAGE)):
            if summary.id in found:
                continue
            t = controller.get(summary.id)
            if not _relevant(t, where, uid):
                continue
            found[t.id] = t
            arrived = False
            for a in t.actions:
                if a.args.get("name") != name:
                    continue
                if a.action in ("migrate", "live_migrate") and a.args.get("dest") == host:
                    todo.append((f"{a.path}/{name}", t.id))  # follow it back to where it came from
                    arrived = True
                elif a.action == "create_vm" and a.path == host:
                    arrived = True
            if arrived:
                break  # older transactions at this path concern whatever was there before it
    return sorted(found.values(), key=lambda t: t.id, reverse=True)[:limit]
