"""The resource contract: typed attributes, actions paired with their undo, queries and constraints.

A :class:`Resource` is a light handle bound to a model view and a path; its state lives in the view's
nodes, so the same class serves the committed model, a copy-on-write simulation and a snapshot. Every
attribute read and write goes through the view, which records the transaction's read and write sets.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

from tropic.errors import InvalidArguments

if TYPE_CHECKING:
    from tropic.model.tree import View

Value = Any  # JSON-serialisable plain data: None, bool, int, float, str, list, dict
T = TypeVar("T")
R = TypeVar("R", bound="Resource")
P = ParamSpec("P")


class Node:
    """The stored state of one resource: its kind and attribute values (children are kept by the model)."""

    __slots__ = ("attrs", "kind")

    def __init__(self, kind: str, attrs: dict[str, Value]) -> None:
        self.kind = kind
        self.attrs = attrs

    def copy(self) -> Node:
        return Node(self.kind, dict(self.attrs))

    def to_dict(self) -> dict[str, Value]:
        return {"kind": self.kind, "attrs": dict(self.attrs)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self.kind == other.kind and self.attrs == other.attrs

    def __repr__(self) -> str:
        return f"Node({self.kind!r}, {self.attrs!r})"


_MISSING: Any = object()


class Attr(Generic[T]):
    """A typed attribute of a resource class, e.g. ``memory_mib = Attr(int, 65536)``."""

    def __init__(self, type_: type[T], default: T = _MISSING, *, doc: str = "") -> None:
        self.type = type_
        self.default = default
        self.doc = doc
        self.name = ""

    def __set_name__(self, owner: type[Resource], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Resource]) -> Attr[T]: ...
    @overload
    def __get__(self, obj: Resource, owner: type[Resource]) -> T: ...
    def __get__(self, obj: Resource | None, owner: type[Resource]) -> Attr[T] | T:
        if obj is None:
            return self
        try:
            value: T = obj._view.read_attr(obj.path, self.name)
        except KeyError:  # a resource stored before this attribute existed
            if self.required:
                raise
            return copy.copy(self.default)
        return value

    def __set__(self, obj: Resource, value: T) -> None:
        obj._view.write_attr(obj.path, self.name, value)

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def check(self, value: Value, where: str) -> None:
        """Refuse a value of the wrong type (bool is not an int, an int is a float)."""
        expected = self.type
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if expected is int and isinstance(value, bool):
            ok = False
        if value is None and self.default is None:
            ok = True
        if not ok:
            raise InvalidArguments(
                f"{where}: attribute {self.name!r} must be {expected.__name__}, got {type(value).__name__}"
            )


@dataclass(frozen=True, slots=True)
class Undo:
    """What a forward action returns: the arguments of its declared undo action (and where to run it)."""

    args: Mapping[str, Value]
    path: str | None = None


def undo(**args: Value) -> Undo:
    """The undo runs on the same resource, with these arguments."""
    return Undo(args)


def undo_at(path: str, **args: Value) -> Undo:
    """The undo runs on another resource (e.g. migrating back from the destination)."""
    return Undo(args, path)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    undo: str
    kind: str = ""  # filled in by Resource.__init_subclass__
    device: bool = True  # False: the action changes the model only, and workers send nothing to a device


@dataclass(frozen=True, slots=True)
class ConstraintSpec:
    name: str
    func: Callable[[Any], Iterator[tuple[str, Resource]]]


def action(
    undo: str, *, device: bool = True
) -> Callable[[Callable[Concatenate[R, P], Undo]], Callable[Concatenate[R, P], Undo]]:
    """Declare a logical action and its undo action together.

    The method changes the resource through the view and returns :func:`undo` arguments; the view records
    the step (path, action, arguments, undo) in the action log that workers replay on devices. Arguments
    are keyword-only plain data so the log survives a restart. ``device=False`` declares a model-only
    action (e.g. cordoning a host: a scheduling rule no device knows about): it is logged, locked and
    constraint-checked like any other, and workers record its step as done without calling a driver; its
    undo must be model-only too.
    """

    def wrap(fn: Callable[Concatenate[R, P], Undo]) -> Callable[Concatenate[R, P], Undo]:
        @functools.wraps(fn)
        def run(self: R, /, *args: P.args, **kwargs: P.kwargs) -> Undo:
            if args:
                raise TypeError(f"action {fn.__name__} takes keyword arguments only")
            return self._view.run_action(self, fn.__name__, undo, fn, kwargs)

        run.__tropic_action__ = ActionSpec(fn.__name__, undo, device=device)  # type: ignore[attr-defined]
        return run

    return wrap


def query(fn: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Mark a read-only method; any write inside it is refused by the view."""

    @functools.wraps(fn)
    def run(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        view = self._view
        view.enter_query()
        try:
            return fn(self, *args, **kwargs)
        finally:
            view.exit_query()

    run.__tropic_query__ = True  # type: ignore[attr-defined]
    return run


def constraint(
    fn: Callable[[R], Iterator[tuple[str, Resource]]],
) -> Callable[[R], Iterator[tuple[str, Resource]]]:
    """Mark a generator method yielding ``(message, resource)`` for each violation of a safety rule."""
    fn.__tropic_constraint__ = True  # type: ignore[attr-defined]
    return fn


class Resource:
    """Base of every resource kind. Subclasses set ``kind`` and declare :class:`Attr` attributes."""

    kind: ClassVar[str] = "resource"
    attrs: ClassVar[dict[str, Attr[Any]]] = {}
    actions: ClassVar[dict[str, ActionSpec]] = {}
    constraints: ClassVar[tuple[ConstraintSpec, ...]] = ()
    child_kinds: ClassVar[tuple[str, ...]] = ()
    # > 0: the resource's name is unique within its ancestor this many levels up, and it can be found by
    # name and uid (tropic.model.index); e.g. 2 for a VM, unique within its region
    name_scope: ClassVar[int] = 0

    __slots__ = ("_view", "path")

    def __init__(self, view: View, path: str) -> None:
        self._view = view
        self.path = path

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        attrs: dict[str, Attr[Any]] = {}
        actions: dict[str, ActionSpec] = {}
        cons: list[ConstraintSpec] = []
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                if isinstance(member, Attr):
                    attrs[name] = member
                spec = getattr(member, "__tropic_action__", None)
                if isinstance(spec, ActionSpec):
                    actions[name] = ActionSpec(spec.name, spec.undo, cls.kind, spec.device)
                if getattr(member, "__tropic_constraint__", False):
                    cons = [c for c in cons if c.name != name]
                    cons.append(ConstraintSpec(name, member))
        cls.attrs = attrs
        cls.actions = actions
        cls.constraints = tuple(cons)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def parent_path(self) -> str:
        return self.path.rsplit("/", 1)[0] or "/"

    def parent(self) -> Resource:
        return self._view.get(self.parent_path)

    def children(self, cls: type[R]) -> Iterator[R]:
        """The children of one kind (reading the child list locks this resource for reading)."""
        for path in self._view.child_paths(self.path):
            if self._view.kind_of(path) == cls.kind:
                yield cls(self._view, path)

    def child(self, name: str, cls: type[R]) -> R:
        return self._view.get(f"{self.path}/{name}", cls)

    def add_child(self, cls: type[R], name: str, **attrs: Value) -> R:
        return self._view.create(f"{self.path}/{name}", cls, attrs)

    def remove_child(self, name: str) -> None:
        self._view.delete(f"{self.path}/{name}")

    def snapshot(self) -> dict[str, Value]:
        """All attribute values (a read of this resource)."""
        return {name: getattr(self, name) for name in self.attrs}

    @classmethod
    def initial_attrs(cls, given: Mapping[str, Value], where: str) -> dict[str, Value]:
        """Validate attributes for a new resource and fill defaults."""
        unknown = set(given) - set(cls.attrs)
        if unknown:
            raise InvalidArguments(f"{where}: unknown attribute(s) {sorted(unknown)} for {cls.kind}")
        out: dict[str, Value] = {}
        for name, spec in cls.attrs.items():
            if name in given:
                spec.check(given[name], where)
                out[name] = given[name]
            elif spec.required:
                raise InvalidArguments(f"{where}: missing attribute {name!r} for {cls.kind}")
            else:
                out[name] = copy.copy(spec.default)
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resource) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


@dataclass(slots=True)
class Violation:
    """One broken safety rule: which constraint, on which resource, and why."""

    constraint: str
    message: str
    path: str

    def to_dict(self) -> dict[str, Value]:
        return {"constraint": self.constraint, "message": self.message, "path": self.path}


@dataclass(slots=True)
class ActionRecord:
    """One entry of the action log: the forward step and its undo, as plain data."""

    path: str
    action: str
    args: dict[str, Value]
    undo_path: str
    undo_action: str
    undo_args: dict[str, Value]
    kind: str = ""
    touches: tuple[str, ...] = ()  # the resources this step changes (what a failed undo leaves behind)

    def to_dict(self) -> dict[str, Value]:
        return {
            "path": self.path,
            "action": self.action,
            "args": self.args,
            "kind": self.kind,
            "touches": list(self.touches),
            "undo": {"path": self.undo_path, "action": self.undo_action, "args": self.undo_args},
        }

    @staticmethod
    def from_dict(data: Mapping[str, Value]) -> ActionRecord:
        u = data["undo"]
        return ActionRecord(
            path=data["path"],
            action=data["action"],
            args=dict(data["args"]),
            undo_path=u["path"],
            undo_action=u["action"],
            undo_args=dict(u["args"]),
            kind=data.get("kind", ""),
            touches=tuple(data.get("touches", ())),
        )


@dataclass(slots=True)
class Schema:
    """Resource kinds by name; every model is typed by one schema."""

    kinds: dict[str, type[Resource]] = field(default_factory=dict)

    def register(self, cls: type[Resource]) -> type[Resource]:
        self.kinds[cls.kind] = cls
        return cls

    def cls(self, kind: str) -> type[Resource]:
        return self.kinds[kind]

    def actions(self) -> dict[str, ActionSpec]:
        """The actions drivers carry out (one driver method each); model-only actions are not listed."""
        out: dict[str, ActionSpec] = {}
        for cls in self.kinds.values():
            out.update({n: a for n, a in cls.actions.items() if a.device})
        return out

    def model_actions(self) -> frozenset[str]:
        """The names of the model-only actions (``@action(..., device=False)``): no device runs them."""
        return frozenset(n for cls in self.kinds.values() for n, a in cls.actions.items() if not a.device)
