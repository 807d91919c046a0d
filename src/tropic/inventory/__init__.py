"""The declarative inventory: a TOML or YAML file listing a fleet's regions, hosts, storage hosts with
images, networks with routers and existing VMs. ``tropic serve --inventory`` starts a fresh store from
one; ``tropic inventory plan|apply`` brings a running server's model to match one, by transactions.

:func:`load` reads and checks a file (every problem named by file, line and field), :func:`build_model`
turns it into a model, :func:`diff` compares it with a model, :func:`dumps` writes one.
"""

from tropic.inventory.build import build_model, device_capacity, needs_capacity
from tropic.inventory.diff import Call, Change, Tree, calls_in_order, diff, tree_of_model
from tropic.inventory.errors import InventoryError, Problem
from tropic.inventory.load import Inventory, load, loads
from tropic.inventory.render import dumps, fleet_data, fleet_of_tree
from tropic.inventory.schema import (
    DRIVER_KINDS,
    Fleet,
    HostSpec,
    ImageSpec,
    NetworkSpec,
    RegionSpec,
    RouterSpec,
    StorageSpec,
    VMSpec,
)

__all__ = [
    "DRIVER_KINDS",
    "Call",
    "Change",
    "Fleet",
    "HostSpec",
    "ImageSpec",
    "Inventory",
    "InventoryError",
    "NetworkSpec",
    "Problem",
    "RegionSpec",
    "RouterSpec",
    "StorageSpec",
    "Tree",
    "VMSpec",
    "build_model",
    "calls_in_order",
    "device_capacity",
    "diff",
    "dumps",
    "fleet_data",
    "fleet_of_tree",
    "load",
    "loads",
    "needs_capacity",
    "tree_of_model",
]
