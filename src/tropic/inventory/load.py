"""Reading an inventory file (TOML or YAML, the same structure) into a checked :class:`Fleet`.

Every problem is reported at once, each naming the file, the line and the field
(``fleet.toml:14: hosts[1].memory_mib: ...``); a syntax error carries the parser's line. Nothing is read
from a device and nothing is changed here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from tropic.inventory.check import check, check_capacity
from tropic.inventory.errors import InventoryError, Loc, Problem
from tropic.inventory.locate import Lines, line_of, toml_lines, yaml_duplicates, yaml_lines
from tropic.inventory.schema import Fleet

TOML_SUFFIXES = (".toml",)
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Inventory:
    """A checked inventory and where it came from (to name lines in later errors, e.g. capacity)."""

    fleet: Fleet
    file: str = "<inventory>"
    lines: Lines = field(default_factory=dict)

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.file, line_of(self.lines, loc), loc, message)

    def error(self, found: list[tuple[Loc, str]]) -> InventoryError:
        return InventoryError([self.problem(loc, msg) for loc, msg in found])


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in TOML_SUFFIXES:
        return "toml"
    if suffix in YAML_SUFFIXES:
        return "yaml"
    raise InventoryError(
        [Problem(str(path), None, (), "unknown format: name the file *.toml, *.yaml or *.yml")]
    )


def load(path: str | Path) -> Inventory:
    """Read and check the inventory file at ``path`` (:class:`InventoryError` listing every problem)."""
    p = Path(path)
    fmt = file_format(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InventoryError([Problem(str(p), None, (), f"cannot read: {why}")]) from None
    return loads(text, fmt, str(p))


def loads(text: str, fmt: str, file: str = "<inventory>") -> Inventory:
    """Parse and check inventory ``text`` in ``fmt`` (``toml`` or ``yaml``)."""
    data, lines, early = _parse_toml(text, file) if fmt == "toml" else _parse_yaml(text, file)
    shell = Inventory(Fleet(), file, lines)
    if not isinstance(data, dict):
        raise InventoryError([Problem(file, 1, (), "the file must hold a table of regions, hosts, ...")])
    try:
        fleet = Fleet.model_validate(data)
    except pydantic.ValidationError as e:
        found = _dedupe([(_loc(err["loc"]), _message(err)) for err in e.errors()])
        raise InventoryError(early + shell.error(found).problems) from None
    inv = Inventory(fleet, file, lines)
    found = check(fleet) + check_capacity(fleet)
    if found or early:
        raise InventoryError(early + inv.error(_dedupe(found)).problems)
    return inv


def _parse_toml(text: str, file: str) -> tuple[Any, Lines, list[Problem]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) or "invalid TOML"
        raise InventoryError([Problem(file, line, (), f"TOML syntax: {message}")]) from None
    return data, toml_lines(text), []


def _parse_yaml(text: str, file: str) -> tuple[Any, Lines, list[Problem]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise InventoryError([Problem(file, line, (), f"YAML syntax: {e.problem or e}")]) from None
    except yaml.YAMLError as e:
        raise InventoryError([Problem(file, None, (), f"YAML: {e}")]) from None
    lines = yaml_lines(node) if node is not None else {}
    dups = [Problem(file, line, loc, "given twice in one mapping") for loc, line in yaml_duplicates(node)]
    return ({} if data is None else data), lines, dups


def _loc(raw: tuple[int | str, ...]) -> Loc:
    # A validator's tag (``function-after[...]``) is not a field of the file.
    return tuple(p for p in raw if isinstance(p, int) or not p.startswith(("function-", "constrained-")))


def _message(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        msg += f", got {type(value).__name__} {value!r}"
    return msg


def _dedupe(found: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """One problem per field."""
    out: list[tuple[Loc, str]] = []
    seen: set[Loc] = set()
    for loc, msg in found:
        if loc not in seen:
            out.append((loc, msg))
            seen.add(loc)
    return out
