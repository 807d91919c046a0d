"""What ``tropic serve --inventory`` does with the file: check it against the server's driver before
anything is opened, build the initial model (asking the devices the capacity the file leaves out), and
tell whether a store that already holds a model matches the file."""

from __future__ import annotations

from typing import Any

from tropic.drivers.base import Driver
from tropic.inventory.build import build_model, device_capacity, host_path, needs_capacity
from tropic.inventory.diff import Change, diff, tree_of_model
from tropic.inventory.load import Inventory
from tropic.model import Model


def driver_kind(uri: str | None) -> str:
    """The kind of driver a ``--driver`` URI opens: ``libvirt`` or ``sim`` (the default)."""
    return "libvirt" if (uri or "").startswith("libvirt") else "sim"


def precheck(inv: Inventory, server_driver: str | None) -> None:
    """Refuse, before any store or device is opened, hosts whose capacity nobody can tell: left out of the
    file and driven by the simulator (which has no hardware to ask)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, h in enumerate(inv.fleet.hosts):
        if (h.cpus is None or h.memory_mib is None) and (h.driver or driver_kind(server_driver)) == "sim":
            key = "cpus" if h.cpus is None else "memory_mib"
            found.append(
                (
                    ("hosts", i, key),
                    f"host {h.region}/{h.name}: {key} is not in the file and a sim host cannot tell; give it",
                )
            )
    if found:
        raise inv.error(found)


def initial_model(inv: Inventory, driver: Driver) -> Model:
    """The model a fresh store starts with: the file's, with the capacity it leaves out from the devices."""
    caps: dict[tuple[str, str], tuple[int, int]] = {}
    if needs_capacity(inv):
        bind: Any = getattr(driver, "bind", None)
        if callable(bind):  # a driver that maps hosts to connections learns them before it is asked
            bind(build_model(inv, provisional=True))
        caps = device_capacity(inv, driver.capacity)
    return build_model(inv, caps)


def mismatches(inv: Inventory, model: Model) -> list[Change]:
    """How a stored model differs from the file (VMs and jobs aside: transactions change them all the
    time; the server creates the file's jobs the model lacks once it is up, see
    :func:`tropic.service.jobs.start_inventory_jobs`)."""
    return [c for c in diff(inv, tree_of_model(model)) if c.kind not in ("vm", "job")]


__all__ = ["driver_kind", "host_path", "initial_model", "mismatches", "precheck"]
