"""The procedure contract: a plain Python function over a model view, its typed parameters, and the
registry that names the procedures a controller may run.

Only registered procedures can run; a request names one and gives plain-data arguments, which are checked
against the function's annotations before a transaction is created (nothing in a request is code).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tropic.errors import InvalidArguments, UnknownProcedure
from tropic.model import MAX_NAME_LENGTH, Value, View, name_pattern
from tropic.model.names import name_error

ProcedureFn = Callable[..., None]

_SCALARS: dict[Any, str] = {int: "integer", str: "string", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class Name:
    """Marks a string argument as the name of a resource the procedure creates, e.g.
    ``name: Annotated[str, Name()]``: the naming rule (:mod:`tropic.model.names`) is then checked when
    the call is validated, before any transaction exists, and published in the procedure's schema."""

    max_length: int = MAX_NAME_LENGTH

    def error(self, value: str) -> str | None:
        return name_error(value, self.max_length)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: type
    required: bool
    default: Value = None
    rule: Name | None = None

    def to_dict(self) -> dict[str, Value]:
        out: dict[str, Value] = {"name": self.name, "type": _SCALARS.get(self.type, "string")}
        out["required"] = self.required
        if not self.required:
            out["default"] = self.default
        if self.rule is not None:
            out["pattern"] = name_pattern(self.rule.max_length)
            out["max_length"] = self.rule.max_length
        return out


@dataclass(frozen=True, slots=True)
class Procedure:
    name: str
    fn: ProcedureFn
    params: tuple[Param, ...]
    doc: str = ""
    # A repair (see tropic.reconcile) may act on fenced resources: that is how a fence is lifted. It is
    # simulated, checked and locked like any other procedure.
    repairs_fences: bool = False

    def validate(self, args: Mapping[str, Value]) -> dict[str, Value]:
        """Check names and types; return the arguments with defaults filled in."""
        if not isinstance(args, Mapping):
            raise InvalidArguments(f"{self.name}: arguments must be an object of named values")
        known = {p.name for p in self.params}
        unknown = sorted(set(args) - known)
        if unknown:
            raise InvalidArguments(f"{self.name}: unknown argument(s) {unknown}; expected {sorted(known)}")
        out: dict[str, Value] = {}
        for p in self.params:
            if p.name not in args:
                if p.required:
                    raise InvalidArguments(f"{self.name}: missing argument {p.name!r} ({p.type.__name__})")
                out[p.name] = p.default
                continue
            v = args[p.name]
            ok = isinstance(v, p.type) and not (p.type is int and isinstance(v, bool))
            if p.type is float and isinstance(v, int) and not isinstance(v, bool):
                ok, v = True, float(v)
            if not ok:
                raise InvalidArguments(
                    f"{self.name}: argument {p.name!r} must be {_SCALARS.get(p.type, p.type.__name__)},"
                    f" got {type(v).__name__} {v!r}"
                )
            problem = p.rule.error(v) if p.rule is not None else None
            if problem is not None:
                raise InvalidArguments(f"{self.name}: argument {p.name!r}: {problem}")
            out[p.name] = v
        return out

    def from_text(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments given as text (a command line's ``name=value``) as the declared types: ``"4"`` is 4
        for an integer parameter and stays ``"4"`` for a string one. Values that are not text, and names
        the procedure does not declare, are left for :meth:`validate` to judge."""
        types = {p.name: p.type for p in self.params}
        out: dict[str, Any] = {}
        for name, raw in args.items():
            kind = types.get(name)
            if not isinstance(raw, str) or kind is None or kind is str:
                out[name] = raw
                continue
            out[name] = _parse_text(self.name, name, raw, kind)
        return out

    def run(self, view: View, args: Mapping[str, Value]) -> None:
        self.fn(view, **args)

    def to_dict(self) -> dict[str, Value]:
        return {"name": self.name, "doc": self.doc, "params": [p.to_dict() for p in self.params]}


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _parse_text(proc: str, name: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    if kind is bool:
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise InvalidArguments(f"{proc}: argument {name!r}: expected true or false, got {raw!r}")
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise InvalidArguments(
            f"{proc}: argument {name!r}: expected {_SCALARS.get(kind, kind.__name__)}, got {raw!r}"
        ) from None
    return raw


@dataclass(slots=True)
class Registry:
    """Procedures by name."""

    procedures: dict[str, Procedure] = field(default_factory=dict)

    @classmethod
    def of(cls, *groups: Iterable[ProcedureFn], repairs: Iterable[ProcedureFn] = ()) -> Registry:
        """A registry holding the procedures of ``groups``, and ``repairs`` marked as repairs."""
        reg = cls()
        for group in groups:
            for fn in group:
                reg.register(fn)
        for fn in repairs:
            reg.register(fn, repairs_fences=True)
        return reg

    def register(
        self, fn: ProcedureFn, name: str | None = None, *, repairs_fences: bool = False
    ) -> Procedure:
        proc_name = name or fn.__name__
        if proc_name in self.procedures and self.procedures[proc_name].fn is not fn:
            raise ValueError(f"procedure {proc_name!r} is already registered")
        hints = typing.get_type_hints(fn, include_extras=True)
        params: list[Param] = []
        for i, (pname, p) in enumerate(inspect.signature(fn).parameters.items()):
            if i == 0:
                continue  # the view
            if p.kind is not inspect.Parameter.KEYWORD_ONLY:
                raise TypeError(f"procedure {proc_name}: argument {pname} must be keyword-only")
            t = hints.get(pname, str)
            rule: Name | None = None
            if typing.get_origin(t) is typing.Annotated:
                t, *extras = typing.get_args(t)
                rule = next((x for x in extras if isinstance(x, Name)), None)
                if rule is not None and t is not str:
                    raise TypeError(f"procedure {proc_name}: argument {pname} is a Name, so it must be str")
            if t not in _SCALARS:
                raise TypeError(f"procedure {proc_name}: argument {pname} must be int, str, float or bool")
            required = p.default is inspect.Parameter.empty
            params.append(Param(pname, t, required, None if required else p.default, rule))
        proc = Procedure(proc_name, fn, tuple(params), inspect.getdoc(fn) or "", repairs_fences)
        self.procedures[proc_name] = proc
        return proc

    def get(self, name: str) -> Procedure:
        try:
            return self.procedures[name]
        except (KeyError, TypeError):
            raise UnknownProcedure(
                f"unknown procedure {name!r}; known: {', '.join(sorted(self.procedures))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self.procedures)
