"""Discovery: what libvirt hypervisors hold, as an inventory document (regions, hosts, storage, networks,
VMs) that ``tropic serve --inventory`` reads back.

Each URI is read through libvirt's own API: the node's CPUs and memory (``getInfo``), its domains (VMs:
vCPUs, current memory, running or stopped), its storage pools' volumes (the images of one storage host per
URI: the volumes of tropic's ``tropic-images`` pool; other pools' volumes are reported, not listed) and
its networks
(a network tropic defined for a router names that router; any other network becomes a network of that
name with one primary router). Names are made to fit the naming rule (:mod:`tropic.model.names`); an
object whose name cannot be kept is listed in ``skipped`` with the reason instead of being renamed
silently. :func:`served_document` reads the same facts from the connections a server has bound
(:mod:`tropic.drivers.router`), named as the server's model names them: discovery of a served fleet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tropic.drivers.libvirt_conn import is_test_uri, load_binding, native_uri
from tropic.drivers.libvirt_hosts import EXPORTS, IMAGES, IMPORTS, VOLUMES
from tropic.drivers.libvirt_xml import ROLE_CONFIG, parse_domain, parse_router, vm_state
from tropic.errors import ConfigError, DriverError
from tropic.model import STANDARD, Model
from tropic.model.names import MAX_NAME_LENGTH, name_error

GIB = 1024**3
TROPIC_POOLS = (IMAGES, VOLUMES, EXPORTS, IMPORTS)
Doc = dict[str, Any]


@dataclass(slots=True)
class Facts:
    """What one hypervisor holds, as discovery reads it."""

    hostname: str = ""
    cpus: int = 0
    memory_mib: int = 0
    vms: list[dict[str, Any]] = field(default_factory=list)  # name, vcpus, memory_mib, state
    pools: bool = False
    images: list[dict[str, Any]] = field(default_factory=list)  # name, size_gib
    networks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # network -> routers
    skipped: list[str] = field(default_factory=list)


def sanitise(raw: str) -> str:
    """``raw`` made into a resource name (lower case; anything else than letters, digits and hyphens
    becomes a hyphen; trimmed to the rule's length); empty when nothing is left."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:MAX_NAME_LENGTH].strip("-")
    return name


def read_node(conn: Any, *, where: str) -> tuple[str, int, int]:
    """(hostname, CPUs, memory MiB) of the node behind ``conn``."""
    info = conn.getInfo()  # [model, memory MiB, CPUs, MHz, NUMA nodes, sockets, cores, threads]
    try:
        hostname = str(conn.getHostname())
    except Exception:  # some drivers cannot tell
        hostname = ""
    return hostname, int(info[2]), int(info[1])


def read_domains(conn: Any, facts: Facts, *, where: str) -> None:
    for dom in conn.listAllDomains(0):
        raw = str(dom.name())
        xml = str(dom.XMLDesc(0))
        info = parse_domain(xml)
        state, _max, memory_kib, vcpus, _cpu = dom.info()
        if info.role == ROLE_CONFIG and not dom.isActive():
            continue  # a configuration prepared ahead of a migration, not a VM
        problem = name_error(raw)
        if problem:
            facts.skipped.append(f"{where}: domain {raw!r} not listed: {problem}")
            continue
        mapped = vm_state(int(state)).value
        if mapped not in ("running", "stopped"):
            facts.skipped.append(f"{where}: domain {raw} not listed: its state is {mapped}")
            continue
        facts.vms.append(
            {"name": raw, "vcpus": int(vcpus), "memory_mib": int(memory_kib) // 1024, "state": mapped}
        )


def read_pools(conn: Any, facts: Facts, *, where: str) -> None:
    pools = {str(p.name()): p for p in conn.listAllStoragePools(0)}
    facts.pools = bool(pools)
    for name, pool in sorted(pools.items()):
        if name in TROPIC_POOLS or not pool.isActive():
            continue
        count = len(pool.listAllVolumes(0))
        if count:
            facts.skipped.append(
                f"{where}: {count} volume(s) of pool {name} not listed as images: tropic's images are the "
                f"volumes of pool {IMAGES} (move an image file there to manage it)"
            )
    pool = pools.get(IMAGES)
    if pool is None or not pool.isActive():
        return
    for vol in pool.listAllVolumes(0):
        raw = str(vol.name())
        problem = name_error(raw)
        if problem:
            facts.skipped.append(f"{where}: image {raw!r} of pool {IMAGES} not listed: {problem}")
            continue
        size = max(1, math.ceil(int(vol.info()[1]) / GIB))
        facts.images.append({"name": raw, "size_gib": size})


def read_networks(conn: Any, facts: Facts, *, where: str) -> None:
    for net in conn.listAllNetworks(0):
        raw = str(net.name())
        found = parse_router(str(net.XMLDesc(0)))
        if found is not None:
            parts = found[0].split("/")  # "", "network", network, router
            if len(parts) == 4:
                facts.networks.setdefault(parts[2], []).append({"name": parts[3], "next_hop": found[1]})
                continue
        name = sanitise(raw)
        if not name:
            facts.skipped.append(f"{where}: network {raw!r} not listed: no usable name")
            continue
        facts.networks.setdefault(name, [])


def read_hypervisor(uri: str) -> Facts:
    """Everything discovery reads from the hypervisor at libvirt URI ``uri`` (opened read-only)."""
    lv = load_binding()
    native = native_uri(uri)
    try:
        conn = lv.openReadOnly(native) if not is_test_uri(native) else lv.open(native)
    except lv.libvirtError as e:
        raise DriverError(f"discover: cannot connect to {native}: {e.get_error_message() or e}") from None
    try:
        facts = Facts()
        facts.hostname, facts.cpus, facts.memory_mib = read_node(conn, where=native)
        read_domains(conn, facts, where=native)
        read_pools(conn, facts, where=native)
        read_networks(conn, facts, where=native)
        return facts
    finally:
        conn.close()


def _routers(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Routers of a network: those tropic defined (router-1 primary, the rest backups, unless known), or
    one primary router for a network tropic did not define."""
    if not found:
        return [{"name": "router-1", "role": "primary", "next_hop": ""}]
    out = []
    for i, r in enumerate(sorted(found, key=lambda r: str(r["name"]))):
        role = r.get("role") or ("primary" if i == 0 else "backup")
        out.append({"name": r["name"], "role": role, "next_hop": r.get("next_hop", "")})
    return out


def discover(uris: Iterable[str], *, region: str = "default") -> Doc:
    """The inventory document of the hypervisors at ``uris`` (libvirt URIs, ``libvirt+`` optional), all
    in region ``region``: host ``kvm-N`` (or the node's host name) and storage host ``san-N`` per URI."""
    problem = name_error(region)
    if problem:
        raise ConfigError(f"--region: {problem}")
    doc: Doc = {"regions": [{"name": region}], "hosts": [], "storage": [], "networks": [], "vms": []}
    networks: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    taken: set[str] = set()
    for i, uri in enumerate(uris, start=1):
        native = native_uri(uri)
        facts = read_hypervisor(native)
        name = sanitise(facts.hostname) if not is_test_uri(native) else ""
        if not name or name in ("localhost", "vm") or name in taken:
            name = f"kvm-{i}"
        taken.add(name)
        doc["hosts"].append(
            {
                "name": name,
                "region": region,
                "driver": "libvirt",
                "uri": native,
                "cpus": facts.cpus,
                "memory_mib": facts.memory_mib,
            }
        )
        if facts.pools:
            doc["storage"].append(
                {
                    "name": f"san-{i}",
                    "region": region,
                    "driver": "libvirt",
                    "uri": native,
                    "images": facts.images,
                }
            )
        for net, routers in facts.networks.items():
            networks.setdefault(net, []).extend(r for r in routers if r not in networks.get(net, []))
        for v in facts.vms:
            doc["vms"].append({"name": v["name"], "host": name, **{k: v[k] for k in v if k != "name"}})
        skipped += facts.skipped
    doc["networks"] = [
        {"name": n, "driver": "libvirt", "routers": _routers(r)} for n, r in sorted(networks.items())
    ]
    if skipped:
        doc["skipped"] = skipped
    return doc


def document_model(doc: Doc) -> Model:
    """A model holding what ``doc`` describes (for a new store served on real hypervisors, and tests;
    ``tropic serve --inventory`` reads inventory files with their own rules)."""
    from tropic.model import (
        VM,
        ComputeRoot,
        Host,
        Image,
        Network,
        NetworkRoot,
        Region,
        Router,
        StorageHost,
        StorageRoot,
    )

    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    m.add("/network", NetworkRoot)
    for r in doc.get("regions", []):
        m.add(f"/compute/{r['name']}", Region)
        m.add(f"/storage/{r['name']}", Region)
    hosts: dict[str, str] = {}
    for h in doc.get("hosts", []):
        path = hosts[h["name"]] = f"/compute/{h['region']}/{h['name']}"
        configs = [v["name"] for v in doc.get("vms", []) if v["host"] == h["name"]]
        m.add(
            path,
            Host,
            cpus=h["cpus"],
            memory_mib=h["memory_mib"],
            driver=h.get("driver", ""),
            uri=h.get("uri", ""),
            configs=configs,
        )
    for s in doc.get("storage", []):
        san = f"/storage/{s['region']}/{s['name']}"
        m.add(san, StorageHost, driver=s.get("driver", ""), uri=s.get("uri", ""))
        for img in s.get("images", []):
            m.add(f"{san}/{img['name']}", Image, size_gib=img.get("size_gib", 10))
    for n in doc.get("networks", []):
        net = f"/network/{n['name']}"
        m.add(net, Network, driver=n.get("driver", ""))
        for r in n.get("routers", []):
            m.add(f"{net}/{r['name']}", Router, role=r.get("role", "primary"), next_hop=r.get("next_hop", ""))
    for v in doc.get("vms", []):
        m.add(
            f"{hosts[v['host']]}/{v['name']}",
            VM,
            vcpus=v["vcpus"],
            memory_mib=v["memory_mib"],
            state=v.get("state", "running"),
        )
    return m


def discover_model(uris: Iterable[str], *, region: str = "default") -> Model:
    """The model of what the hypervisors at ``uris`` hold (see :func:`discover`)."""
    return document_model(discover(uris, region=region))
