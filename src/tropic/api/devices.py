"""Discovery of the served fleet through the API: the inventory document of the server's bound devices
(``GET /v1/discover``), the device objects its model does not know (``GET /v1/unmanaged``), adopting them
into the model (``POST /v1/unmanaged/adopt``: a reload of the devices holding them, constraint-checked like
any change) or ignoring them (``POST /v1/unmanaged/ignore``: a persisted list the reconciler and the
listing skip).

The devices are read outside the controller's logical thread, on a copy of the model taken on it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tropic.drivers.discover_served import served_document, unmanaged
from tropic.drivers.router import RouterDriver
from tropic.errors import ConfigError
from tropic.model import Model
from tropic.txn.controller import Controller


class PathsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(description="resource paths of unmanaged objects", min_length=1, max_length=1000)


class IgnoreList:
    """Paths of unmanaged device objects to leave alone, kept in a JSON file (``None``: in memory only)."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        if file is not None and file.is_file():
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ConfigError(f"ignore list {file} is not readable JSON: {e}", path=str(file)) from None
            self._paths = {str(p) for p in data.get("ignored", [])}

    @classmethod
    def beside(cls, store: object) -> IgnoreList:
        """The list of an embedded store (``<store>.unmanaged-ignored.json``); in memory for others."""
        path = getattr(store, "path", None)
        if isinstance(path, Path):
            return cls(path.with_name(path.name + ".unmanaged-ignored.json"))
        return cls(None)

    def covers(self, path: str) -> bool:
        with self._lock:
            return path in self._paths

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._paths)

    def add(self, paths: list[str]) -> list[str]:
        with self._lock:
            self._paths |= set(paths)
            snapshot = sorted(self._paths)
        if self.file is not None:
            tmp = self.file.with_name(self.file.name + ".tmp")
            tmp.write_text(json.dumps({"ignored": snapshot}, indent=1), encoding="utf-8")
            os.replace(tmp, self.file)
        return snapshot


def model_copy(controller: Controller) -> Model:
    """A copy of the controller's model taken on its logical thread (devices are then read without
    holding it)."""

    def take() -> Model:
        src = controller.model
        m = Model(src.schema)
        m.nodes = {p: n.copy() for p, n in src.nodes.items()}
        m.kids = {p: set(k) for p, k in src.kids.items()}
        return m

    return controller.call(take)


def router_of(controller: Controller, model: Model) -> RouterDriver:
    drv = controller.driver
    return drv if isinstance(drv, RouterDriver) else RouterDriver(drv).bind(model, provision=False)


def discover_served(controller: Controller, ignored: IgnoreList) -> dict[str, Any]:
    model = model_copy(controller)
    router = router_of(controller, model)
    items = [{**u, "ignored": ignored.covers(u["path"])} for u in unmanaged(router, model)]
    return {
        "inventory": served_document(router, model),
        "unmanaged": [u for u in items if not u["ignored"]],
        "capacity_problems": list(router.capacity_problems),
    }


def list_unmanaged(controller: Controller, ignored: IgnoreList, *, include_ignored: bool) -> dict[str, Any]:
    model = model_copy(controller)
    found = unmanaged(router_of(controller, model), model)
    items = [{**u, "ignored": ignored.covers(u["path"])} for u in found]
    return {"items": [u for u in items if include_ignored or not u["ignored"]], "ignored": ignored.paths()}
