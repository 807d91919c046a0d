"""Where each field of an inventory file is: a map from a field's location (``("hosts", 1, "cpus")``) to its
line, so every error can name the line.

tomllib keeps no positions, so :func:`toml_lines` scans the (already parsed, hence valid) text itself:
table headers (``[[hosts]]``, ``[hosts.labels]``), ``key =`` lines, and the elements of arrays and inline
tables, however they are laid out. YAML keeps them: :func:`yaml_lines` walks the composed nodes.
"""

from __future__ import annotations

import re
from typing import Any

from tropic.inventory.errors import Loc

Lines = dict[Loc, int]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def line_of(lines: Lines, loc: Loc) -> int | None:
    """The line of ``loc``, else of its nearest ancestor that has one (a missing field: its table)."""
    for n in range(len(loc), 0, -1):
        line = lines.get(loc[:n])
        if line is not None:
            return line
    return None


class _TomlScanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: Lines = {}
        self.arrays: dict[Loc, int] = {}  # array-of-tables location -> how many elements so far
        self.table: Loc = ()

    # --- characters ----------------------------------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def advance(self, n: int = 1) -> None:
        chunk = self.s[self.i : self.i + n]
        self.line += chunk.count("\n")
        self.i += n

    def skip_space(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.advance()
            else:
                return

    def skip_string(self) -> str:
        for quote in ('"""', "'''"):
            if self.peek(3) == quote:
                end = self.s.find(quote, self.i + 3)
                end = len(self.s) if end < 0 else end
                while self.s.startswith(quote[0], end + 3):  # up to two quotes may close the content
                    end += 1
                text = self.s[self.i + 3 : end]
                self.advance(end + 3 - self.i)
                return text
        quote = self.s[self.i]
        j = self.i + 1
        while j < len(self.s) and self.s[j] != quote and self.s[j] != "\n":
            j += 2 if quote == '"' and self.s[j] == "\\" else 1
        text = self.s[self.i + 1 : j]
        self.advance(j + 1 - self.i)
        return text

    # --- structure -----------------------------------------------------------------------------------
    def key(self) -> tuple[str, ...]:
        """A (possibly dotted, possibly quoted) key."""
        parts: list[str] = []
        while True:
            self.skip_space(False)
            if self.peek() in ('"', "'"):
                parts.append(self.skip_string())
            else:
                m = _BARE.match(self.s, self.i)
                if m is None:
                    raise ValueError("no key")
                parts.append(m.group())
                self.advance(m.end() - self.i)
            self.skip_space(False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def resolve(self, parts: tuple[str, ...]) -> Loc:
        """A header's dotted name as a location: a name that is an array of tables means its last element."""
        loc: Loc = ()
        for part in parts:
            loc = (*loc, part)
            if loc in self.arrays:
                loc = (*loc, self.arrays[loc] - 1)
        return loc

    def header(self) -> None:
        line = self.line
        double = self.peek(2) == "[["
        self.advance(2 if double else 1)
        parts = self.key()
        self.advance(2 if double else 1)
        if double:
            base = (*self.resolve(parts[:-1]), parts[-1])
            index = self.arrays.get(base, 0)
            self.arrays[base] = index + 1
            self.lines.setdefault(base, line)
            self.table = (*base, index)
        else:
            self.table = self.resolve(parts)
        self.lines[self.table] = line

    def value(self, loc: Loc) -> None:
        self.skip_space(False)
        c = self.peek()
        if c == "[":
            self.advance()
            index = 0
            while True:
                self.skip_space(True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                self.lines[(*loc, index)] = self.line
                self.value((*loc, index))
                self.skip_space(True)
                if self.peek() == ",":
                    self.advance()
                    index += 1
        elif c == "{":
            self.advance()
            while True:
                self.skip_space(False)
                if self.peek() in ("}", ""):
                    self.advance()
                    return
                if self.peek() == ",":
                    self.advance()
                    continue
                sub = (*loc, *self.key())
                self.lines[sub] = self.line
                self.advance()  # "="
                self.value(sub)
        elif c in ('"', "'"):
            self.skip_string()
        else:
            m = re.compile(r"[^,\]}\n#]*").match(self.s, self.i)
            assert m is not None
            self.advance(m.end() - self.i)

    def run(self) -> Lines:
        while self.i < len(self.s):
            self.skip_space(True)
            if self.i >= len(self.s):
                break
            if self.peek() == "[":
                self.header()
                continue
            loc = (*self.table, *self.key())
            self.lines[loc] = self.line
            self.advance()  # "="
            self.value(loc)
        return self.lines


def toml_lines(text: str) -> Lines:
    """The line of every table, key and array element of a valid TOML document (best effort: what it
    cannot follow is left out, and :func:`line_of` falls back to the enclosing table)."""
    scanner = _TomlScanner(text)
    try:
        return scanner.run()
    except (ValueError, IndexError, AssertionError):
        return scanner.lines


def yaml_lines(node: Any, loc: Loc = (), lines: Lines | None = None) -> Lines:
    """The line of every key and sequence item under a composed YAML node (``yaml.compose``)."""
    import yaml

    out: Lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*loc, str(key.value))
            out.setdefault(sub, key.start_mark.line + 1)
            yaml_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*loc, index)
            out[sub] = item.start_mark.line + 1
            yaml_lines(item, sub, out)
    return out


def yaml_duplicates(node: Any, loc: Loc = ()) -> list[tuple[Loc, int]]:
    """Keys given twice in one YAML mapping (PyYAML would keep the last silently): location and line."""
    import yaml

    out: list[tuple[Loc, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            sub = (*loc, str(key.value))
            if key.value in seen:
                out.append((sub, key.start_mark.line + 1))
            seen.add(key.value)
            out += yaml_duplicates(value, sub)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out += yaml_duplicates(item, (*loc, index))
    return out
