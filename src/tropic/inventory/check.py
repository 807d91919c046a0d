"""Checks of an inventory beyond its types: unique names, references that exist, capacity that holds the
VMs. Each problem is ``(location, message)``; :mod:`tropic.inventory.load` adds the file and the line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tropic.inventory.errors import Loc
from tropic.inventory.schema import Fleet, HostSpec, StorageSpec, VMSpec

Found = list[tuple[Loc, str]]


def _unique(items: Iterable[tuple[Loc, str]], what: str) -> Found:
    out: Found = []
    seen: dict[str, Loc] = {}
    for loc, key in items:
        if key in seen:
            out.append(((*loc, "name"), f"duplicate {what} {key!r} (first at {_show(seen[key])})"))
        else:
            seen[key] = loc
    return out


def _show(loc: Loc) -> str:
    from tropic.inventory.errors import field_name

    return field_name(loc)


def host_key(fleet: Fleet, ref: str) -> tuple[str, str] | None:
    """``(region, host)`` for a VM's ``host``: ``name`` (unique across regions) or ``region/name``."""
    if "/" in ref:
        region, _, name = ref.partition("/")
        return (region, name) if any(h.region == region and h.name == name for h in fleet.hosts) else None
    found = fleet.region_of_host(ref)
    return None if found is None else (found, ref)


def vm_region(fleet: Fleet, vm: VMSpec) -> str | None:
    key = host_key(fleet, vm.host)
    return None if key is None else key[0]


def check(fleet: Fleet) -> Found:
    """Every problem of ``fleet`` beyond types, in file order."""
    out: Found = []
    regions = {r.name for r in fleet.regions}
    out += _unique(((("regions", i), r.name) for i, r in enumerate(fleet.regions)), "region")
    placed: tuple[tuple[str, Sequence[HostSpec | StorageSpec]], ...] = (
        ("hosts", fleet.hosts),
        ("storage", fleet.storage),
    )
    for section, items in placed:
        for i, spec in enumerate(items):
            if spec.region not in regions:
                out.append(((section, i, "region"), f"unknown region {spec.region!r}; {_known(regions)}"))
        what = "host" if section == "hosts" else "storage host"
        out += _unique((((section, i), f"{s.region}/{s.name}") for i, s in enumerate(items)), what)
    for i, san in enumerate(fleet.storage):
        out += _unique(((("storage", i, "images", j), img.name) for j, img in enumerate(san.images)), "image")
    out += _unique(((("networks", i), n.name) for i, n in enumerate(fleet.networks)), "network")
    for i, net in enumerate(fleet.networks):
        routers = {r.name: r for r in net.routers}
        out += _unique(((("networks", i, "routers", j), r.name) for j, r in enumerate(net.routers)), "router")
        for j, r in enumerate(net.routers):
            if not r.next_hop:
                continue
            loc: Loc = ("networks", i, "routers", j, "next_hop")
            hop = routers.get(r.next_hop)
            if hop is None:
                out.append((loc, f"unknown router {r.next_hop!r} in network {net.name}; {_known(routers)}"))
            elif hop.name == r.name:
                out.append((loc, f"router {r.name} cannot be its own next hop"))
            elif r.role == "primary" and hop.role == "backup":
                out.append((loc, f"a primary router's next hop must not be a backup router ({hop.name})"))
    out += _check_vms(fleet)
    out += _check_jobs(fleet)
    return out


def _check_jobs(fleet: Fleet) -> Found:
    """Unique names, a known region, and enough failure domains among the file's hosts for the replicas
    (the rule ``Job.replicas_in_distinct_domains`` enforces when the job is created)."""
    out: Found = _unique(((("jobs", i), j.name) for i, j in enumerate(fleet.jobs)), "job")
    regions = {r.name for r in fleet.regions}
    for i, job in enumerate(fleet.jobs):
        if job.region and job.region not in regions:
            out.append((("jobs", i, "region"), f"unknown region {job.region!r}; {_known(regions)}"))
            continue
        domains = set()
        for h in fleet.hosts:
            if h.cordoned or (job.region and h.region != job.region):
                continue
            if job.failure_domain == "region":
                domains.add(h.region)
            elif job.failure_domain == "rack":
                domains.add(h.failure_domain or f"{h.region}/{h.name}")
            else:
                domains.add(f"{h.region}/{h.name}")
        if fleet.hosts and len(domains) < job.replicas:
            where = f" in region {job.region}" if job.region else ""
            out.append(
                (
                    ("jobs", i, "replicas"),
                    f"job {job.name} needs {job.replicas} replicas in distinct {job.failure_domain}s, but "
                    f"the file's open hosts{where} make only {len(domains)} "
                    "(Job.replicas_in_distinct_domains)",
                )
            )
    return out


def _known(names: Iterable[str]) -> str:
    shown = sorted(names)
    return f"known: {', '.join(shown)}" if shown else "none is declared"


def _check_vms(fleet: Fleet) -> Found:
    out: Found = []
    keyed: list[tuple[Loc, str]] = []
    for i, vm in enumerate(fleet.vms):
        key = host_key(fleet, vm.host)
        if key is None:
            hosts = sorted({h.name for h in fleet.hosts})
            ambiguous = "/" not in vm.host and sum(h.name == vm.host for h in fleet.hosts) > 1
            why = "names hosts in several regions: write <region>/<host>" if ambiguous else _known(hosts)
            out.append((("vms", i, "host"), f"unknown host {vm.host!r}; {why}"))
            continue
        region = key[0]
        keyed.append((("vms", i), f"{region}/{vm.name}"))
        if vm.image:
            san, _, image = vm.image.partition("/")
            found = any(
                s.region == region and s.name == san and any(img.name == image for img in s.images)
                for s in fleet.storage
            )
            if not found:
                out.append(
                    (
                        ("vms", i, "image"),
                        f"unknown image {vm.image!r} in region {region} (<storage>/<image>)",
                    )
                )
    out += _unique(keyed, "VM (per region)")
    return out


def usage(fleet: Fleet) -> dict[tuple[str, str], tuple[int, int]]:
    """(vCPUs, memory MiB) the file's VMs use, per ``(region, host)``."""
    used: dict[tuple[str, str], tuple[int, int]] = {}
    for vm in fleet.vms:
        key = host_key(fleet, vm.host)
        if key is not None:
            cpus, mem = used.get(key, (0, 0))
            used[key] = (cpus + vm.vcpus, mem + vm.memory_mib)
    return used


def check_capacity(fleet: Fleet, capacity: Mapping[tuple[str, str], tuple[int, int]] | None = None) -> Found:
    """Hosts whose capacity (from the file, else ``capacity``) is below what their VMs use."""
    out: Found = []
    used = usage(fleet)
    for i, h in enumerate(fleet.hosts):
        cpus, mem = resolved(h, (capacity or {}).get((h.region, h.name)))
        vcpus, vmem = used.get((h.region, h.name), (0, 0))
        if mem is not None and vmem > mem:
            out.append(
                (("hosts", i, "memory_mib"), f"{mem} MiB is below the {vmem} MiB its VMs use ({h.name})")
            )
        if cpus is not None and vcpus > cpus * h.cpu_overcommit:
            out.append(
                (
                    ("hosts", i, "cpus"),
                    f"{cpus} CPUs x {h.cpu_overcommit:g} overcommit is below the {vcpus} vCPUs its VMs use "
                    f"({h.name})",
                )
            )
    return out


def resolved(h: HostSpec, device: tuple[int, int] | None) -> tuple[int | None, int | None]:
    """A host's (CPUs, memory MiB): the file's, else what its device reported."""
    cpus = h.cpus if h.cpus is not None else (device[0] if device else None)
    mem = h.memory_mib if h.memory_mib is not None else (device[1] if device else None)
    return cpus, mem
