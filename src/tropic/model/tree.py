"""The logical model (a tree of typed resources by path) and the copy-on-write views procedures run on.

A :class:`View` is an overlay over a :class:`Model`: reads fall through to the committed nodes, writes copy
a node into the overlay first. The view records everything a transaction needs later: the action log,
the read and write sets (for locks), and the overlay itself, which :meth:`Model.apply` commits as a
:class:`Delta` that :meth:`Model.revert` undoes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tropic.errors import ModelError, ResourceExists, UnknownResource
from tropic.model import index as naming
from tropic.model.base import ActionRecord, Node, Resource, Schema, Undo, Value, Violation
from tropic.model.names import check_name
from tropic.model.names import check_path as check_path  # importers of the path check before names.py

R = TypeVar("R", bound=Resource)

ROOT = "/"


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or ROOT


def join(parent: str, name: str) -> str:
    return f"/{name}" if parent == ROOT else f"{parent}/{name}"


def ancestors(path: str) -> Iterator[str]:
    """Proper ancestors, nearest first, ending with the root."""
    while path != ROOT:
        path = parent_of(path)
        yield path


@dataclass(slots=True)
class Delta:
    """What one transaction changed in the model, with before-images so it can be reverted exactly."""

    after: dict[str, Node | None] = field(default_factory=dict)
    before: dict[str, Node | None] = field(default_factory=dict)
    added: dict[str, set[str]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Value]:
        def nodes(d: dict[str, Node | None]) -> dict[str, Value]:
            return {p: (n.to_dict() if n is not None else None) for p, n in d.items()}

        return {
            "after": nodes(self.after),
            "before": nodes(self.before),
            "added": {p: sorted(s) for p, s in self.added.items()},
            "removed": {p: sorted(s) for p, s in self.removed.items()},
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Delta:
        def nodes(d: Mapping[str, Any]) -> dict[str, Node | None]:
            return {p: (Node(n["kind"], dict(n["attrs"])) if n is not None else None) for p, n in d.items()}

        return Delta(
            after=nodes(data["after"]),
            before=nodes(data["before"]),
            added={p: set(s) for p, s in data["added"].items()},
            removed={p: set(s) for p, s in data["removed"].items()},
        )


class Model:
    """The committed logical model. Only the controller's logical thread changes it.

    Loaders may fill ``nodes`` and ``kids`` directly while building a model; the name index
    (:attr:`index`) is built on first use and from then on kept by :meth:`add`, :meth:`apply_delta` and
    :meth:`revert` (call :meth:`reindex` after writing nodes directly into a model already in use)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.nodes: dict[str, Node] = {ROOT: Node("root", {})}
        self.kids: dict[str, set[str]] = {}
        self.version = 0
        self._index: naming.NameIndex | None = None

    @property
    def index(self) -> naming.NameIndex:
        """Named resources by name and uid (see :mod:`tropic.model.index`)."""
        if self._index is None:
            self._index = naming.NameIndex.build(self.schema, self.nodes.items())
        return self._index

    def reindex(self) -> None:
        self._index = None

    # --- building (direct, no transaction: used to load a datacenter or restore from a store) ---------
    def add(self, path: str, cls: type[Resource], **attrs: Value) -> str:
        parent = parent_of(path)
        check_name(path.rsplit("/", 1)[1], parent=parent)
        check_path(path)
        if parent not in self.nodes:
            raise UnknownResource(f"cannot add {path}: parent {parent} does not exist", path=parent)
        if path in self.nodes:
            raise ResourceExists(f"{path} already exists", path=path)
        node = self.nodes[path] = Node(cls.kind, cls.initial_attrs(attrs, path))
        self.kids.setdefault(parent, set()).add(path.rsplit("/", 1)[1])
        if self._index is not None:
            self._index.put(path, node)
        return path

    # --- reading ------------------------------------------------------------------------------------
    def get(self, path: str, cls: type[R] | None = None) -> R:
        return self.reader().get(path, cls)

    def reader(self) -> View:
        """A read-only view of the committed model."""
        return View(self, readonly=True)

    def view(self) -> View:
        """A fresh copy-on-write view for simulating one transaction."""
        return View(self)

    def __contains__(self, path: object) -> bool:
        return path in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def children(self, path: str) -> list[str]:
        return [join(path, n) for n in sorted(self.kids.get(path, ()))]

    def count(self, kind: str) -> int:
        return sum(1 for n in self.nodes.values() if n.kind == kind)

    def walk(self, path: str = ROOT) -> Iterator[tuple[str, Node]]:
        """Depth-first, children in name order."""
        stack = [path]
        while stack:
            p = stack.pop()
            node = self.nodes.get(p)
            if node is None:
                continue
            yield p, node
            stack.extend(reversed(self.children(p)))

    # --- committing ----------------------------------------------------------------------------------
    def apply(self, view: View) -> Delta:
        """Commit a view's overlay; return the delta that :meth:`revert` undoes."""
        delta = Delta()
        nodes = self.nodes
        for path, node in view.overlay.items():
            delta.before[path] = nodes.get(path)
            delta.after[path] = node
        for parent, names in view.added.items():
            if names:
                delta.added[parent] = set(names)
        for parent, names in view.removed.items():
            if names:
                delta.removed[parent] = set(names)
        self.apply_delta(delta)
        return delta

    def apply_delta(self, delta: Delta) -> None:
        nodes = self.nodes
        index = self._index
        for path, node in delta.after.items():
            if index is not None:
                index.change(path, nodes.get(path), node)
            if node is None:
                nodes.pop(path, None)
            else:
                nodes[path] = node
        for parent, names in delta.removed.items():
            kids = self.kids.get(parent)
            if kids is not None:
                kids.difference_update(names)
                if not kids:
                    del self.kids[parent]
        for parent, names in delta.added.items():
            self.kids.setdefault(parent, set()).update(names)
        self.version += 1

    def revert(self, delta: Delta) -> None:
        """Undo a committed delta. Safe while the transaction still holds its locks: written nodes are
        restored from before-images, child lists by inverse deltas (other transactions may have added
        siblings under the same parent meanwhile)."""
        nodes = self.nodes
        index = self._index
        for path, node in delta.before.items():
            if index is not None:
                index.change(path, nodes.get(path), node)
            if node is None:
                nodes.pop(path, None)
            else:
                nodes[path] = node
        for parent, names in delta.added.items():
            kids = self.kids.get(parent)
            if kids is not None:
                kids.difference_update(names)
                if not kids:
                    del self.kids[parent]
        for parent, names in delta.removed.items():
            self.kids.setdefault(parent, set()).update(names)
        self.version += 1


class View:
    """A copy-on-write view of a model, recording reads, writes and the action log of one transaction."""

    __slots__ = (
        "_action_depth",
        "_query_depth",
        "_touches",
        "added",
        "base",
        "log",
        "named",
        "overlay",
        "readonly",
        "reads",
        "removed",
        "schema",
        "writes",
    )

    def __init__(self, base: Model, *, readonly: bool = False) -> None:
        self.base = base
        self.schema = base.schema
        self.readonly = readonly
        self.overlay: dict[str, Node | None] = {}
        self.added: dict[str, set[str]] = {}
        self.removed: dict[str, set[str]] = {}
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.log: list[ActionRecord] = []
        self._action_depth = 0
        self._query_depth = 0
        self._touches: dict[str, None] = {}
        # name -> paths of the named resources this view created (see tropic.model.index)
        self.named: dict[str, set[str]] | None = None

    # --- nodes -----------------------------------------------------------------------------------------
    def _node(self, path: str) -> Node | None:
        overlay = self.overlay
        if path in overlay:
            return overlay[path]
        return self.base.nodes.get(path)

    node = _node

    def exists(self, path: str) -> bool:
        return self._node(path) is not None

    def kind_of(self, path: str) -> str:
        node = self._node(path)
        if node is None:
            raise UnknownResource(f"no resource at {path}", path=path)
        return node.kind

    def get(self, path: str, cls: type[R] | None = None) -> R:
        """A handle on the resource at ``path``, checked to be of ``cls``'s kind."""
        node = self._node(path)
        if node is None:
            check_path(path)
            raise UnknownResource(f"no resource at {path}", path=path)
        if cls is None:
            found = self.schema.kinds.get(node.kind, Resource)
            return found(self, path)  # type: ignore[return-value]
        if node.kind != cls.kind:
            raise UnknownResource(f"{path} is a {node.kind}, not a {cls.kind}", path=path)
        return cls(self, path)

    def resolve(self, ref: str, cls: type[R]) -> R:
        """The ``cls`` resource ``ref`` designates: its path, or for a named kind (a VM) its name, its
        ``scope/name`` (``us-east/web-1``) or its uid; an unknown or ambiguous name is a clear error."""
        return naming.resolve(self, ref, cls)

    def check_free(self, path: str, cls: type[Resource]) -> None:
        """Refuse (naming the holder) a ``cls`` at ``path`` whose name is already used in its scope."""
        if cls.name_scope:
            naming.check_unique(self, path, cls.kind, cls.name_scope)

    def read_attr(self, path: str, name: str) -> Value:
        self.reads.add(path)
        node = self._node(path)
        if node is None:
            raise UnknownResource(f"no resource at {path}", path=path)
        return node.attrs[name]

    def _writable(self, path: str) -> Node:
        if self.readonly:
            raise ModelError(f"cannot change {path} outside a transaction", path=path)
        if self._query_depth:
            raise ModelError(f"a query tried to change {path}", path=path)
        if self._action_depth == 0:
            raise ModelError(f"{path} may only be changed by an action (declare it with @action)", path=path)
        self._touches[path] = None
        overlay = self.overlay
        if path in overlay:
            node = overlay[path]
            if node is None:
                raise UnknownResource(f"no resource at {path}", path=path)
            return node
        base = self.base.nodes.get(path)
        if base is None:
            raise UnknownResource(f"no resource at {path}", path=path)
        node = base.copy()
        overlay[path] = node
        self.writes.add(path)
        return node

    def write_attr(self, path: str, name: str, value: Value) -> None:
        self._writable(path).attrs[name] = value

    # --- structure ---------------------------------------------------------------------------------------
    def child_paths(self, path: str) -> list[str]:
        self.reads.add(path)
        names = set(self.base.kids.get(path, ()))
        added = self.added.get(path)
        if added:
            names |= added
        removed = self.removed.get(path)
        if removed:
            names -= removed
        return [join(path, n) for n in sorted(names)]

    def create(self, path: str, cls: type[R], attrs: Mapping[str, Value]) -> R:
        if self.readonly or self._action_depth == 0:
            raise ModelError(f"{path} may only be created by an action", path=path)
        parent = parent_of(path)
        if self._node(parent) is None:
            raise UnknownResource(f"cannot create {path}: no resource at {parent}", path=parent)
        if self._node(path) is not None:
            raise ResourceExists(f"{path} already exists", path=path)
        name = path.rsplit("/", 1)[1]
        removed = self.removed.get(parent)
        if not (removed and name in removed):
            # A new name must follow the rule; one this view removed here (a VM recreated by a repair)
            # was already in the model, and stays reachable whatever it was named before the rule.
            check_name(name, parent=parent)
        if cls.name_scope:
            naming.check_unique(self, path, cls.kind, cls.name_scope)
            if self.named is None:
                self.named = {}
            self.named.setdefault(name, set()).add(path)
        self.overlay[path] = Node(cls.kind, cls.initial_attrs(attrs, path))
        self._touches[path] = None
        if removed and name in removed:
            removed.discard(name)
        else:
            self.added.setdefault(parent, set()).add(name)
        self.writes.add(path)
        return cls(self, path)

    def delete(self, path: str) -> None:
        if self.readonly or self._action_depth == 0:
            raise ModelError(f"{path} may only be deleted by an action", path=path)
        node = self._node(path)
        if node is None:
            raise UnknownResource(f"no resource at {path}", path=path)
        levels = getattr(self.schema.kinds.get(node.kind), "name_scope", 0)
        if levels:
            self.writes.add(naming.name_key(path, levels))
        if self.child_paths(path):
            raise ModelError(f"cannot delete {path}: it still has children", path=path)
        parent = parent_of(path)
        name = path.rsplit("/", 1)[1]
        self.overlay[path] = None
        self._touches[path] = None
        added = self.added.get(parent)
        if added and name in added:
            added.discard(name)
        else:
            self.removed.setdefault(parent, set()).add(name)
        self.writes.add(path)

    # --- actions, queries, constraints ----------------------------------------------------------------
    def run_action(
        self,
        resource: Resource,
        name: str,
        undo_name: str,
        fn: Callable[..., Undo],
        kwargs: Mapping[str, Value],
    ) -> Undo:
        if self._action_depth:
            raise ModelError(
                f"action {name} called inside another action on {resource.path}", path=resource.path
            )
        self._action_depth = 1
        self._touches = {}
        try:
            result = fn(resource, **kwargs)
        finally:
            self._action_depth = 0
        if not isinstance(result, Undo):
            raise TypeError(f"action {type(resource).__name__}.{name} must return undo(...)")
        self.log.append(
            ActionRecord(
                resource.path,
                name,
                dict(kwargs),
                result.path or resource.path,
                undo_name,
                dict(result.args),
                resource.kind,
                tuple(self._touches),
            )
        )
        return result

    def check_constraints(self) -> list[Violation]:
        """Evaluate the constraints of every written resource and its ancestors (for a deleted resource,
        its ancestors only). Cost grows with what the transaction touched, not with the model."""
        todo: dict[str, None] = {}
        for path in self.writes:
            if self._node(path) is not None:
                todo[path] = None
            for anc in ancestors(path):
                if anc in todo:
                    break
                todo[anc] = None
        return self.evaluate(todo)

    def evaluate(self, paths: Iterable[str]) -> list[Violation]:
        """The violations of the constraints of the resources at ``paths`` (missing ones are skipped)."""
        out: list[Violation] = []
        kinds = self.schema.kinds
        for path in paths:
            node = self._node(path)
            if node is None:
                continue
            cls = kinds.get(node.kind)
            if cls is None or not cls.constraints:
                continue
            handle = cls(self, path)
            for spec in cls.constraints:
                for message, res in spec.func(handle):
                    out.append(Violation(f"{cls.__name__}.{spec.name}", message, res.path))
        return out

    def enter_query(self) -> None:
        self._query_depth += 1

    def exit_query(self) -> None:
        self._query_depth -= 1
