"""Who is who in the model: resources addressed by name (unique within a scope, e.g. a VM within its
region) or by a stable uid, not only by path.

A kind opts in with ``name_scope`` (how many levels above the resource its naming scope is: 2 for a VM
at ``/compute/<region>/<host>/<vm>``, whose scope is the region). The :class:`Model` keeps a
:class:`NameIndex` of those kinds (name -> paths, uid -> path), built once on first use and then updated
node by node when a delta is applied or reverted, so a lookup costs the same in a 1K- and a 1M-VM model.
A :class:`~tropic.model.tree.View` adds what its transaction created (:func:`resolve`, :func:`check_unique`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from tropic.errors import AmbiguousName, InvalidArguments, ResourceExists, UnknownResource
from tropic.model.base import Node, Resource, Schema

if TYPE_CHECKING:
    from tropic.model.tree import View

R = TypeVar("R", bound=Resource)

# A name key is a lock path, not a resource: ``<scope>/#<name>``. ``#`` never occurs in a name, so no
# resource can have it. Creating or deleting a named resource writes its key, so two transactions that
# change who holds one name in one scope conflict (a spawn of web-1 waits for a running destroy of the
# other web-1 of the region: if that destroy rolls back, the spawn sees the name taken).
NAME_KEY = "#"


def new_uid() -> str:
    """A fresh stable identity (a random UUID; recorded in the action log, so replay and undo reuse it)."""
    return str(uuid.uuid4())


def scope_of(path: str, levels: int) -> str:
    """The ancestor ``levels`` above ``path`` (the root when the path is shallower)."""
    for _ in range(levels):
        path = path.rsplit("/", 1)[0] or "/"
    return path


def name_key(path: str, levels: int) -> str:
    scope = scope_of(path, levels)
    return f"{scope.rstrip('/')}/{NAME_KEY}{path.rsplit('/', 1)[1]}"


def scopes(schema: Schema) -> dict[str, int]:
    """Kind -> levels up to its naming scope, for the kinds that have one."""
    return {kind: cls.name_scope for kind, cls in schema.kinds.items() if cls.name_scope > 0}


class NameIndex:
    """Name -> paths and uid -> path of the named kinds' nodes of one model. A name maps to a set: the
    uniqueness rule holds within a scope, so a name may exist once per scope (and models built before the
    rule, or directly rather than by transactions, may even repeat one)."""

    __slots__ = ("by_name", "by_uid", "scopes", "usage")

    def __init__(self, kind_scopes: Mapping[str, int]) -> None:
        self.scopes = dict(kind_scopes)
        # a name held once (the usual case) maps to its path itself, not to a set: a set per VM would
        # cost ~200 bytes each, 200 MB at 1M VMs
        self.by_name: dict[str, str | set[str]] = {}
        self.by_uid: dict[str, str] = {}
        # parent path -> [vcpus, memory_mib, count] of its named children that have them (a host's VMs):
        # the capacity views and metrics read a host's use in O(1) instead of walking its VMs
        self.usage: dict[str, list[int]] = {}

    @classmethod
    def build(cls, schema: Schema, nodes: Iterable[tuple[str, Node]]) -> NameIndex:
        index = cls(scopes(schema))
        if index.scopes:
            for path, node in nodes:
                index.put(path, node)
        return index

    def put(self, path: str, node: Node) -> None:
        if node.kind not in self.scopes:
            return
        name = path.rsplit("/", 1)[1]
        held = self.by_name.get(name)
        if held is None:
            self.by_name[name] = path
        elif isinstance(held, str):
            if held != path:
                self.by_name[name] = {held, path}
        else:
            held.add(path)
        uid = node.attrs.get("uid")
        if isinstance(uid, str) and uid:
            self.by_uid[uid] = path
        self._use(path, node, 1)

    def _use(self, path: str, node: Node, sign: int) -> None:
        cpus, mem = node.attrs.get("vcpus"), node.attrs.get("memory_mib")
        if isinstance(cpus, int) and isinstance(mem, int):
            parent = path.rsplit("/", 1)[0] or "/"
            use = self.usage.get(parent)
            if use is None:
                use = self.usage[parent] = [0, 0, 0]
            use[0] += sign * cpus
            use[1] += sign * mem
            use[2] += sign
            if not use[2]:
                del self.usage[parent]

    def used(self, parent: str) -> tuple[int, int, int]:
        """(vcpus, memory_mib, count) of the named children of ``parent`` (a host's VMs)."""
        use = self.usage.get(parent)
        return (use[0], use[1], use[2]) if use is not None else (0, 0, 0)

    def drop(self, path: str, node: Node) -> None:
        if node.kind not in self.scopes:
            return
        name = path.rsplit("/", 1)[1]
        held = self.by_name.get(name)
        if held == path:
            del self.by_name[name]
        elif isinstance(held, set):
            held.discard(path)
            if len(held) == 1:
                self.by_name[name] = next(iter(held))
        uid = node.attrs.get("uid")
        if isinstance(uid, str) and uid and self.by_uid.get(uid) == path:
            del self.by_uid[uid]
        self._use(path, node, -1)

    def paths(self, name: str) -> tuple[str, ...]:
        """The paths of the named resources called ``name``."""
        held = self.by_name.get(name)
        if held is None:
            return ()
        return (held,) if isinstance(held, str) else tuple(held)

    def change(self, path: str, old: Node | None, new: Node | None) -> None:
        if old is not None:
            self.drop(path, old)
        if new is not None:
            self.put(path, new)


# --- in a view: the committed index plus what the transaction created ------------------------------------
def _named(view: View, name: str, kind: str) -> list[str]:
    """Paths of live ``kind`` resources called ``name`` as the view sees them, in path order."""
    found = set(view.base.index.paths(name))
    local = view.named
    if local:
        found |= local.get(name, set())
    out = []
    for p in sorted(found):
        node = view.node(p)
        if node is not None and node.kind == kind:
            out.append(p)
    return out


def _by_uid(view: View, uid: str, kind: str) -> str | None:
    candidates = [view.base.index.by_uid.get(uid)]
    for paths in (view.named or {}).values():
        candidates.extend(paths)
    for p in candidates:
        if p is None:
            continue
        node = view.node(p)
        if node is not None and node.kind == kind and node.attrs.get("uid") == uid:
            return p
    return None


def resolve(view: View, ref: str, cls: type[R]) -> R:
    """The ``cls`` resource ``ref`` designates: a path (``/compute/us-east/h1/web-1``), a uid, a name
    unique among its kind (``web-1``) or a name within a scope (``us-east/web-1``)."""
    what = cls.__name__
    if not isinstance(ref, str) or not ref:
        raise InvalidArguments(f"expected a {what} path, name or uid, got {ref!r}")
    if ref.startswith("/"):
        return view.get(ref, cls)
    levels = cls.name_scope
    if levels <= 0:
        raise InvalidArguments(f"a {what} is named by its path (starting with /), got {ref!r}")
    found = _by_uid(view, ref, cls.kind)
    if found is not None:
        return cls(view, found)
    scope_name, sep, name = ref.rpartition("/")
    if sep and (not scope_name or "/" in scope_name or not name):
        raise InvalidArguments(
            f"{ref!r} is not a {what} reference: give its path, its name, scope/name "
            f"(e.g. us-east/web-1) or its uid"
        )
    paths = _named(view, name, cls.kind)
    if sep:
        paths = [p for p in paths if scope_of(p, levels).rsplit("/", 1)[1] == scope_name]
    if not paths:
        where = f" in {scope_name}" if sep else ""
        raise UnknownResource(f"no {what} named {name!r}{where} (nor with uid {ref!r})", path=None)
    if len(paths) > 1:
        scopes_seen = sorted({scope_of(p, levels).rsplit("/", 1)[1] for p in paths})
        raise AmbiguousName(
            f"{what} name {name!r} is used by {len(paths)} resources: {', '.join(paths)}; "
            f"give <scope>/<name> (e.g. {scopes_seen[0]}/{name}), the path or the uid",
        )
    return cls(view, paths[0])


def check_unique(view: View, path: str, kind: str, levels: int) -> None:
    """Refuse a second ``kind`` named like ``path``'s last segment in the same scope; write the name key."""
    name = path.rsplit("/", 1)[1]
    scope = scope_of(path, levels)
    for other in _named(view, name, kind):
        if other != path and scope_of(other, levels) == scope:
            raise ResourceExists(
                f"cannot create {path}: the name {name!r} is already used in {scope} by {other}"
                " (names are unique within it)",
                path=path,
            )
    view.writes.add(name_key(path, levels))
