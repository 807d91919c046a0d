"""libvirt XML for the ``libvirt`` driver: the documents tropic defines (domains, volumes, pools, networks)
and the few facts it reads back from them, plus the map from libvirt's native domain states to ours.

Pure functions over strings: nothing here talks to libvirt, so it is importable (and testable) without
libvirt-python. tropic's own facts (a domain's role, image and volume; a router's path and next hop) live
in libvirt ``<metadata>`` under :data:`NS`, which libvirt keeps verbatim and never interprets.
"""

from __future__ import annotations

import enum
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, unquote

from tropic.errors import DriverError

NS = "urn:tropic:libvirt:1"
ET.register_namespace("tropic", NS)
_T = f"{{{NS}}}"

# Domain roles recorded in the metadata: a VM, or a configuration defined ahead of a migration.
ROLE_VM = "vm"
ROLE_CONFIG = "config"

# Stable identity for domains tropic defines: the same VM name gets the same UUID on every host, so a
# configuration prepared on a destination accepts a real live migration of the VM onto it.
_UUID_NS = uuid.UUID("6b1f5a5e-3c1d-4c57-9f0e-7d2a4e1b9c01")


def domain_uuid(name: str) -> str:
    return str(uuid.uuid5(_UUID_NS, f"vm:{name}"))


# --- native states ----------------------------------------------------------------------------------------
class VMState(enum.Enum):
    """tropic's VM states as a driver reports them; UNKNOWN for anything the model has no word for."""

    RUNNING = "running"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


# virDomainState values (part of libvirt's stable ABI), written out so this map needs no binding.
NATIVE_STATES: dict[int, tuple[str, VMState]] = {
    0: ("nostate", VMState.UNKNOWN),
    1: ("running", VMState.RUNNING),
    2: ("blocked", VMState.RUNNING),  # running, waiting on a resource
    3: ("paused", VMState.UNKNOWN),  # suspended by an operator or by libvirt (e.g. disk full)
    4: ("shutdown", VMState.UNKNOWN),  # being shut down: neither running nor stopped yet
    5: ("shutoff", VMState.STOPPED),
    6: ("crashed", VMState.UNKNOWN),
    7: ("pmsuspended", VMState.UNKNOWN),
}


def vm_state(native: int) -> VMState:
    """Map a virDomainState to a tropic VM state (UNKNOWN for states added by later libvirt versions)."""
    entry = NATIVE_STATES.get(native)
    return VMState.UNKNOWN if entry is None else entry[1]


# --- names ---------------------------------------------------------------------------------------------
def marker_name(path: str) -> str:
    """A storage-volume name that encodes a resource path reversibly (``/`` cannot occur in a name)."""
    return quote(path, safe="-_.~")


def marker_path(name: str) -> str:
    return unquote(name)


def network_name(router: str) -> str:
    """The libvirt network that represents router ``router`` (its path is kept in the metadata too)."""
    return "tropic-" + router.strip("/").replace("/", "-")


# --- units -----------------------------------------------------------------------------------------------
_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}


def _bytes(el: ET.Element, default_unit: str) -> int:
    unit = el.get("unit", default_unit).lower()
    scale = _UNITS.get(unit)
    if scale is None:
        raise DriverError(f"libvirt: unknown unit {unit!r} in <{el.tag}>")
    return int((el.text or "0").strip()) * scale


def _parse(xml: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as e:
        raise DriverError(f"libvirt returned malformed {what} XML: {e}") from e


def _text(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")


def _metadata(root: ET.Element, tag: str) -> ET.Element | None:
    meta = root.find("metadata")
    return None if meta is None else meta.find(_T + tag)


def _set_metadata(root: ET.Element, tag: str, attrs: dict[str, str], *, after: str = "uuid") -> None:
    meta = root.find("metadata")
    if meta is None:
        meta = ET.Element("metadata")
        anchor = root.find(after)
        index = list(root).index(anchor) + 1 if anchor is not None else len(root)
        root.insert(index, meta)
    old = meta.find(_T + tag)
    if old is not None:
        meta.remove(old)
    ET.SubElement(meta, _T + tag, attrs)


# --- domains ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DomainSpec:
    """What tropic defines for a VM (or a configuration): the model's attributes plus where its disk is."""

    name: str
    vcpus: int
    memory_mib: int
    role: str = ROLE_VM
    image: str = ""
    volume: str = ""
    disk_path: str = ""
    uuid: str = ""


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """What tropic reads back from a domain's XML. ``role`` is empty for a domain tropic did not define."""

    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    role: str
    image: str
    volume: str
    boot: bool = False  # a copy migration defined it here and has still to start it


def domain_xml(spec: DomainSpec, domain_type: str) -> str:
    """A minimal, hypervisor-neutral domain: libvirt fills in machine type, emulator and addresses."""
    root = ET.Element("domain", type=domain_type)
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "uuid").text = spec.uuid or domain_uuid(spec.name)
    _set_metadata(root, "vm", {"role": spec.role, "image": spec.image, "volume": spec.volume})
    kib = str(spec.memory_mib * 1024)
    ET.SubElement(root, "memory", unit="KiB").text = kib
    ET.SubElement(root, "currentMemory", unit="KiB").text = kib
    ET.SubElement(root, "vcpu").text = str(spec.vcpus)
    os_ = ET.SubElement(root, "os")
    ET.SubElement(os_, "type").text = "hvm"
    ET.SubElement(os_, "boot", dev="hd")
    devices = ET.SubElement(root, "devices")
    if spec.disk_path:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", file=spec.disk_path)
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
    return _text(root)


def parse_domain(xml: str) -> DomainInfo:
    root = _parse(xml, "domain")
    name = root.findtext("name", "")
    vcpu = root.find("vcpu")
    vcpus = 0
    if vcpu is not None:
        vcpus = int(vcpu.get("current") or (vcpu.text or "0").strip())
    mem = root.find("memory")
    memory_mib = _bytes(mem, "KiB") // 1024**2 if mem is not None else 0
    meta = _metadata(root, "vm")
    return DomainInfo(
        name=name,
        uuid=root.findtext("uuid", ""),
        vcpus=vcpus,
        memory_mib=memory_mib,
        role="" if meta is None else meta.get("role", ROLE_VM),
        image="" if meta is None else meta.get("image", ""),
        volume="" if meta is None else meta.get("volume", ""),
        boot=meta is not None and meta.get("boot") == "yes",
    )


def with_role(xml: str, role: str, *, uuid_: str | None = None, boot: bool = False) -> str:
    """The same domain with tropic's role set (keeping image and volume); optionally under another UUID;
    ``boot`` marks a domain a copy migration has still to start (a redo after a crash finds the intent)."""
    root = _parse(xml, "domain")
    meta = _metadata(root, "vm")
    attrs = {"role": role, "image": "", "volume": ""}
    if meta is not None:
        attrs.update({k: v for k, v in meta.attrib.items() if k in ("image", "volume")})
    if boot:
        attrs["boot"] = "yes"
    _set_metadata(root, "vm", attrs)
    if uuid_ is not None:
        el = root.find("uuid")
        if el is None:
            el = ET.Element("uuid")
            root.insert(1, el)
        el.text = uuid_
    root.attrib.pop("id", None)
    return _text(root)


def with_size(xml: str, vcpus: int, memory_mib: int) -> str:
    """The same (inactive) domain definition with new vCPU and memory sizes."""
    root = _parse(xml, "domain")
    kib = str(memory_mib * 1024)
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is None:
            el = ET.SubElement(root, tag)
        el.attrib.clear()
        el.set("unit", "KiB")
        el.text = kib
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.attrib.pop("current", None)
    vcpu.text = str(vcpus)
    # Per-vCPU settings and NUMA cells sized for the old count would make libvirt refuse the definition.
    for tag in ("vcpus", "cputune"):
        el = root.find(tag)
        if el is not None:
            root.remove(el)
    return _text(root)


def domain_types(capabilities: str) -> list[str]:
    """The domain types a hypervisor offers (``kvm``, ``qemu``, ``test``, ...), from its capabilities."""
    root = _parse(capabilities, "capabilities")
    out: list[str] = []
    for el in root.iter("domain"):
        t = el.get("type")
        if t and t not in out:
            out.append(t)
    return out


# --- storage ---------------------------------------------------------------------------------------------
def pool_xml(name: str, target: str) -> str:
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = name
    ET.SubElement(ET.SubElement(root, "target"), "path").text = target
    return _text(root)


def volume_xml(name: str, capacity: int, *, backing: str = "", backing_format: str = "raw") -> str:
    """A volume; with ``backing`` a copy-on-write (qcow2) clone whose backing store is the image."""
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(root, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type="qcow2" if backing else "raw")
    if backing:
        store = ET.SubElement(root, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type=backing_format)
    return _text(root)


def volume_backing(xml: str) -> str:
    """The path of a volume's backing store (its image), or empty."""
    root = _parse(xml, "volume")
    return root.findtext("backingStore/path", "") or ""


def volume_format(xml: str) -> str:
    """A volume's format (``raw``, ``qcow2``, ...); ``raw`` when libvirt reports none."""
    fmt = _parse(xml, "volume").find("target/format")
    return "raw" if fmt is None else fmt.get("type", "raw")


# --- networks (routers) ----------------------------------------------------------------------------------
def network_xml(router: str, next_hop: str) -> str:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = network_name(router)
    _set_metadata(root, "router", {"path": router, "next-hop": next_hop}, after="name")
    return _text(root)


def with_next_hop(xml: str, next_hop: str) -> str:
    root = _parse(xml, "network")
    meta = _metadata(root, "router")
    path = "" if meta is None else meta.get("path", "")
    _set_metadata(root, "router", {"path": path, "next-hop": next_hop})
    return _text(root)


def parse_router(xml: str) -> tuple[str, str] | None:
    """(router path, next hop) of a network tropic defined; None for any other network."""
    meta = _metadata(_parse(xml, "network"), "router")
    if meta is None or not meta.get("path"):
        return None
    return meta.get("path", ""), meta.get("next-hop", "")


# --- the node document of a private test hypervisor ----------------------------------------------------
def test_node_xml(cpus: int = 16, memory_mib: int = 32768) -> str:
    """A test-driver node with no domains, networks or pools (tropic provisions those through the API)."""
    root = ET.Element("node")
    cpu = ET.SubElement(root, "cpu")
    for tag, value in (("nodes", 1), ("sockets", 1), ("cores", cpus), ("threads", 1), ("active", cpus)):
        ET.SubElement(cpu, tag).text = str(value)
    ET.SubElement(cpu, "mhz").text = "2400"
    ET.SubElement(cpu, "model").text = "i686"
    ET.SubElement(root, "memory").text = str(memory_mib * 1024)
    return _text(root)
