"""The layout shows the architecture: no import cycles between packages or modules, and no module much
over 600 lines (split it by responsibility instead)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC / "tropic"
MAX_LINES = 620  # "about 600": a module past this is split by responsibility


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (imports for the type checker only)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path) -> set[str]:
    """Every tropic module ``path`` imports at run time, lazily (inside functions) included."""
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tropic"):
            # ``from tropic.api import views`` imports the submodule, not the package's __init__
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULE_NAMES
            out.update(subs or {node.module})
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("tropic"))
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}
MODULE_NAMES = set(MODULES)


def _graph(key: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        src = _package(module) if key == "package" else module
        for dst in _imports(path):
            target = _package(dst) if key == "package" else dst
            if target != src and (key == "package" or target in MODULES):
                graph.setdefault(src, set()).add(target)
    return graph


@pytest.mark.parametrize("level", ["package", "module"])
def test_no_import_cycles(level: str) -> None:
    sorter = graphlib.TopologicalSorter(_graph(level))
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle between {level}s: {' -> '.join(e.args[1])}")


def test_the_lower_layers_do_not_import_the_upper_ones() -> None:
    """The data flows top to bottom: records and procedures under txn, stores under txn, drivers and the
    model under everything."""
    graph = _graph("package")
    below = {
        "errors": set(),
        "model": {"errors"},
        "records": {"errors", "model"},
        "geo": {"errors"},  # the follow-the-sun models (pre-copy): pure functions the procedures use
        "procedures": {"errors", "model", "geo"},
        "drivers": {"errors", "model", "retry", "owner"},
        "store": {"errors", "model", "records", "retry", "owner"},
        "txn": {"errors", "model", "records", "procedures", "store", "drivers", "retry", "owner"},
    }
    for package, allowed in below.items():
        extra = graph.get(package, set()) - allowed
        assert not extra, f"tropic.{package} imports {sorted(extra)}; it may only import {sorted(allowed)}"


def test_no_module_is_much_over_600_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in MODULES.values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules by responsibility: {long}"
