"""The repair plan: which repair procedures (:mod:`tropic.procedures.repair`) fix a list of drift, in
which stages, and which drift no procedure can repair."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tropic.model import parent_of
from tropic.procedures.repair import REPAIR_PROCEDURES
from tropic.reconcile.base import Drift

Call = tuple[str, dict[str, Any]]


REPAIRS = tuple(fn.__name__ for fn in REPAIR_PROCEDURES)


def plan(drifts: list[Drift]) -> tuple[list[list[Call]], list[Drift]]:
    """The repair calls for ``drifts`` in stages (storage, imports, VMs, VM details, routers: a stage runs
    after the previous one is over), and the drift no procedure can repair (with a note why)."""
    stages: list[dict[tuple[str, str], Call]] = [{} for _ in range(5)]
    cannot: list[Drift] = []
    recreated: set[str] = set()  # VMs defined again from scratch: their details and config come along

    def add(stage: int, proc: str, **args: Any) -> None:
        stages[stage].setdefault((proc, repr(sorted(args.items()))), (proc, args))

    def refuse(d: Drift, why: str) -> None:
        d.note = why
        cannot.append(d)

    ordered = sorted(drifts, key=lambda d: (d.attribute != "exists", d.path, d.attribute))
    for d in ordered:
        name = d.path.rsplit("/", 1)[1]
        if d.attribute == "reachable":
            refuse(d, f"{d.device} does not answer")
        elif d.kind in ("host", "storage_host", "router") and d.attribute == "exists":
            refuse(d, "tropic does not add or remove devices")
        elif d.kind == "image":
            refuse(d, "images are not managed by procedures: reload to accept what the device holds")
        elif d.kind == "volume":
            if d.attribute != "exists":
                add(0, "restore_export" if d.attribute == "exported" else "recreate_volume", volume=d.path)
            elif d.logical:
                add(0, "recreate_volume", volume=d.path)
            else:
                image = str((d.detail or {}).get("image", ""))
                if parent_of(image) != parent_of(d.path):
                    refuse(d, f"its image {image or '(unknown)'} is not on {parent_of(d.path)}: reload it")
                else:
                    add(0, "remove_orphan_volume", volume=d.path, image=image.rsplit("/", 1)[1])
        elif d.kind == "host":  # volume imports
            for volume in sorted(set(d.logical) ^ set(d.physical)):
                add(1, "restore_import", host=d.path, volume=volume)
        elif d.kind == "vm":
            _vm(d, name, add, recreated)
        elif d.kind == "router":
            add(4, "restore_next_hop", router=d.path)
        else:
            refuse(d, f"no repair for a {d.kind}")
    return [list(s.values()) for s in stages if s], cannot


def _vm(d: Drift, name: str, add: Callable[..., None], recreated: set[str]) -> None:
    host = parent_of(d.path)
    if d.attribute == "exists":
        recreated.add(d.path)
        if d.logical:
            add(2, "recreate_vm", vm=d.path)
        else:
            spec = d.detail or {}
            vcpus, memory = int(spec.get("vcpus", 1)), int(spec.get("memory_mib", 1))
            add(2, "remove_orphan_vm", host=host, name=name, vcpus=vcpus, memory_mib=memory)
    elif d.path in recreated:
        return  # defining the VM again brings its details and configuration with it
    elif d.attribute in ("image", "volume"):
        recreated.add(d.path)
        add(2, "recreate_vm", vm=d.path)
    elif d.attribute in ("vcpus", "memory_mib"):
        add(3, "restore_vm_size", vm=d.path)
    elif d.attribute == "state":
        add(3, "restore_vm_state", vm=d.path)
    elif d.attribute == "config":
        add(3, "restore_config", host=host, name=name)
