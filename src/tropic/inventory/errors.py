"""Problems found in an inventory file, each naming the file, the line and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tropic.errors import ConfigError

Loc = tuple[str | int, ...]


def field_name(loc: Loc) -> str:
    """``("hosts", 1, "memory_mib")`` as ``hosts[1].memory_mib``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an inventory file: where (file, line, field) and why."""

    file: str
    line: int | None
    loc: Loc
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        name = field_name(self.loc)
        return f"{where}: {name}: {self.message}" if name else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": field_name(self.loc), "message": self.message}


class InventoryError(ConfigError):
    """An inventory file that cannot be used: every problem found, one per line; nothing was changed."""

    code = "invalid_inventory"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid inventory")
