"""Writing inventories: a :class:`Fleet` as TOML or YAML in the file format :mod:`tropic.inventory.load`
reads (fields at their default left out), and the fleet a model holds (:func:`fleet_of_tree`), e.g. to
start a file from a running server or from discovered devices."""

from __future__ import annotations

from typing import Any

from tropic.inventory.diff import Tree
from tropic.inventory.schema import (
    Fleet,
    HostSpec,
    ImageSpec,
    NetworkSpec,
    RegionSpec,
    RouterSpec,
    StorageSpec,
    VMSpec,
)


def fleet_data(fleet: Fleet) -> dict[str, Any]:
    """Plain data of ``fleet`` without the fields at their default (what a person would write)."""
    data = fleet.model_dump(exclude_defaults=True)
    return {k: v for k, v in data.items() if v}


def dumps(fleet: Fleet, fmt: str = "toml") -> str:
    """``fleet`` as the text of an inventory file (``toml`` or ``yaml``)."""
    data = fleet_data(fleet)
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    import tomli_w

    return tomli_w.dumps(data)


def fleet_of_tree(tree: Tree) -> Fleet:
    """The fleet a model holds: its regions, hosts, storage hosts with images, networks with routers and
    VMs (a VM's image as ``<storage host>/<image>``)."""
    regions: dict[str, RegionSpec] = {}
    hosts: list[HostSpec] = []
    storage: dict[str, dict[str, Any]] = {}
    networks: dict[str, dict[str, Any]] = {}
    vms: list[VMSpec] = []
    for path, (kind, a) in sorted(tree.items()):
        parts = path.split("/")
        if kind == "region" and parts[2] not in regions:
            regions[parts[2]] = RegionSpec(
                name=parts[2],
                location=a.get("location", ""),
                timezone=a.get("timezone", ""),
                provider=a.get("provider", ""),
                labels=dict(a.get("labels") or {}),
            )
        elif kind == "host":
            hosts.append(
                HostSpec(
                    name=parts[3],
                    region=parts[2],
                    driver=a.get("driver", ""),
                    uri=a.get("uri", ""),
                    cpus=a["cpus"],
                    memory_mib=a["memory_mib"],
                    cpu_overcommit=float(a.get("cpu_overcommit", 4.0)),
                    failure_domain=a.get("failure_domain", ""),
                    labels=dict(a.get("labels") or {}),
                    cordoned=bool(a.get("cordoned", False)),
                )
            )
        elif kind == "storage_host":
            storage[path] = {
                "name": parts[3],
                "region": parts[2],
                "driver": a.get("driver", ""),
                "uri": a.get("uri", ""),
                "capacity_gib": a.get("capacity_gib", 100_000),
                "labels": dict(a.get("labels") or {}),
                "images": [],
            }
        elif kind == "image":
            storage["/".join(parts[:4])]["images"].append(
                ImageSpec(name=parts[4], size_gib=a.get("size_gib", 10))
            )
        elif kind == "net":
            networks[parts[2]] = {
                "name": parts[2],
                "driver": a.get("driver", ""),
                "cidr": a.get("cidr", ""),
                "routers": [],
            }
        elif kind == "router":
            net = networks[parts[2]]
            hop = str(a.get("next_hop", ""))
            driver = a.get("driver", "")
            net["routers"].append(
                RouterSpec(
                    name=parts[3],
                    role=a.get("role", "primary"),
                    next_hop=hop.rsplit("/", 1)[1] if hop else "",
                    driver="" if driver == net["driver"] else driver,
                )
            )
        elif kind == "vm":
            image = str(a.get("image", ""))
            vms.append(
                VMSpec(
                    name=parts[4],
                    host=f"{parts[2]}/{parts[3]}",
                    vcpus=a["vcpus"],
                    memory_mib=a["memory_mib"],
                    image="/".join(image.split("/")[3:5]) if image else "",
                    state=a.get("state", "running"),
                    labels=dict(a.get("labels") or {}),
                )
            )
    return Fleet(
        regions=list(regions.values()),
        hosts=hosts,
        storage=[StorageSpec(**s) for s in storage.values()],
        networks=[NetworkSpec(**n) for n in networks.values()],
        vms=vms,
    )
