"""Reload (device -> model): write what the devices report into a view of the model.

The view is built directly (reload is not a procedure, so no action log: nothing runs on a device) and
handed to :meth:`tropic.txn.Controller.apply_change`, which checks the constraints of what it touches and
persists it like a transaction's delta. Findings the model cannot take (a device that vanished or does not
answer, a VM state the model has no word for) are left out, with the reason.
"""

from __future__ import annotations

from tropic.errors import TropicError
from tropic.model import (
    RUNNING,
    STOPPED,
    VM,
    Image,
    Model,
    Node,
    Resource,
    Value,
    View,
    Volume,
    check_name,
    parent_of,
)
from tropic.reconcile.compare import Finding

NATIVE_VM_STATES = {"running": RUNNING, "stopped": STOPPED}  # device state -> model state


class _Skip(Exception):
    """This finding cannot be written into the model (the message says why)."""


def reload_view(
    model: Model, findings: list[Finding]
) -> tuple[View, list[Finding], list[tuple[Finding, str]]]:
    """A view of ``model`` with ``findings`` written in as the devices report them; the findings applied
    and those skipped with the reason."""
    view = View(model)
    applied: list[Finding] = []
    skipped: list[tuple[Finding, str]] = []
    for f in findings:
        try:
            _apply(view, f)
        except (_Skip, TropicError) as e:
            skipped.append((f, str(e)))
            continue
        applied.append(f)
    return view, applied, skipped


def _apply(view: View, f: Finding) -> None:
    if f.attribute == "reachable":
        raise _Skip(f"{f.device} does not answer; it can be reloaded once it does")
    if f.kind in ("host", "storage_host", "router") and f.attribute == "exists":
        where = "the devices" if f.physical else "the model"
        raise _Skip(f"{f.path} is missing from {where}: tropic does not add or remove devices by reload")
    if f.kind == "vm":
        _vm(view, f)
    elif f.kind == "host":  # the host's volume imports
        _set(view, f.path, "volumes", list(f.physical))
    elif f.kind == "image":
        if f.physical:
            _create(view, f.path, Image, {})
        else:
            _delete(view, f.path)
    elif f.kind == "volume":
        _volume(view, f)
    elif f.kind == "router":
        _set(view, f.path, "next_hop", f.physical)
    else:
        raise _Skip(f"{f.path}: cannot reload a {f.kind}")


def _vm(view: View, f: Finding) -> None:
    if f.attribute == "config":
        host = parent_of(f.path)
        name = f.path.rsplit("/", 1)[1]
        node = _current(view, host)
        configs = [c for c in (node.attrs["configs"] if node else []) if c != name]
        _set(view, host, "configs", [*configs, name] if f.physical else configs)
    elif f.attribute == "exists":
        if not f.physical:
            _delete(view, f.path)
            return
        spec = dict(f.detail or {})
        spec["state"] = _state(f.path, spec.get("state"))
        _create(view, f.path, VM, {k: spec[k] for k in ("vcpus", "memory_mib", "image", "volume", "state")})
    else:
        value = _state(f.path, f.physical) if f.attribute == "state" else f.physical
        VM.attrs[f.attribute].check(value, f.path)
        _set(view, f.path, f.attribute, value)


def _volume(view: View, f: Finding) -> None:
    if f.attribute == "exists":
        if not f.physical:
            _delete(view, f.path)
            return
        spec = f.detail or {}
        image = str(spec.get("image", ""))
        attrs: dict[str, Value] = {"image": image, "exported": bool(spec.get("exported", False))}
        img = _current(view, image) if image else None
        if img is not None and img.kind == "image":
            attrs["size_gib"] = img.attrs["size_gib"]
        _create(view, f.path, Volume, attrs)
        return
    Volume.attrs[f.attribute].check(f.physical, f.path)
    _set(view, f.path, f.attribute, f.physical)


def _state(path: str, native: Value) -> str:
    state = NATIVE_VM_STATES.get(str(native))
    if state is None:
        raise _Skip(f"the device reports {path} {native!r}, a state the model has no word for: repair it")
    return state


# --- writing a view directly (what actions do through Resource methods) -------------------------------
def _current(view: View, path: str) -> Node | None:
    if path in view.overlay:
        return view.overlay[path]
    return view.base.nodes.get(path)


def _set(view: View, path: str, name: str, value: Value) -> None:
    node = _current(view, path)
    if node is None:
        raise _Skip(f"{path} is not in the model")
    if path not in view.overlay:
        node = node.copy()
        view.overlay[path] = node
    node.attrs[name] = value
    view.writes.add(path)


def _create(view: View, path: str, cls: type[Resource], attrs: dict[str, Value]) -> None:
    parent = parent_of(path)
    if _current(view, parent) is None:
        raise _Skip(f"cannot add {path}: {parent} is not in the model")
    if path not in view.base.nodes:
        check_name(path.rsplit("/", 1)[1], parent=parent)  # a device's own name enters the model here
    view.overlay[path] = Node(cls.kind, cls.initial_attrs(attrs, path))
    view.writes.add(path)
    name = path.rsplit("/", 1)[1]
    removed = view.removed.get(parent)
    if removed and name in removed:
        removed.discard(name)
    elif path not in view.base.nodes:
        view.added.setdefault(parent, set()).add(name)


def _delete(view: View, path: str) -> None:
    if _current(view, path) is None:
        return
    if view.base.kids.get(path) or view.added.get(path):
        raise _Skip(f"cannot remove {path}: it has children in the model")
    parent = parent_of(path)
    name = path.rsplit("/", 1)[1]
    view.overlay[path] = None
    view.writes.add(path)
    added = view.added.get(parent)
    if added and name in added:
        added.discard(name)
    else:
        view.removed.setdefault(parent, set()).add(name)
