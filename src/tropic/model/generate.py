"""Build a logical model of a datacenter: regions with hosts, a SAN with images, and a routed network."""

from __future__ import annotations

from dataclasses import dataclass, field

from tropic.model import (
    STANDARD,
    ComputeRoot,
    Host,
    Image,
    Model,
    Network,
    NetworkRoot,
    Region,
    Router,
    StorageHost,
    StorageRoot,
)

DEFAULT_REGIONS = ("us-east", "eu-west", "ap-south")
DEFAULT_IMAGES = ("img-ubuntu", "img-debian")


@dataclass(frozen=True, slots=True)
class DatacenterSpec:
    regions: tuple[str, ...] = DEFAULT_REGIONS
    hosts_per_region: int = 4
    host_cpus: int = 16
    host_memory_mib: int = 32768
    images: tuple[str, ...] = DEFAULT_IMAGES
    routers_per_region: int = 2  # router-1 primary, the rest backups
    host_uri: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def host_path(region: str, index: int) -> str:
    return f"/compute/{region}/host-{index:02d}"


def image_path(region: str, image: str = DEFAULT_IMAGES[0]) -> str:
    return f"/storage/{region}/san-1/{image}"


def build_datacenter(spec: DatacenterSpec | None = None) -> Model:
    """A model of ``spec``: ``/compute/<region>/host-NN``, ``/storage/<region>/san-1/<image>``,
    ``/network/<region>/router-N`` (router-1 primary)."""
    s = spec or DatacenterSpec()
    m = Model(STANDARD)
    m.add("/compute", ComputeRoot)
    m.add("/storage", StorageRoot)
    m.add("/network", NetworkRoot)
    for region in s.regions:
        m.add(f"/compute/{region}", Region, location=region)
        for i in range(1, s.hosts_per_region + 1):
            m.add(
                host_path(region, i),
                Host,
                cpus=s.host_cpus,
                memory_mib=s.host_memory_mib,
                uri=s.host_uri,
                failure_domain=f"{region}-rack-{(i - 1) // 2 + 1}",
            )
        m.add(f"/storage/{region}", Region, location=region)
        m.add(f"/storage/{region}/san-1", StorageHost)
        for image in s.images:
            m.add(image_path(region, image), Image)
        m.add(f"/network/{region}", Network, cidr="10.0.0.0/16")
        for i in range(1, s.routers_per_region + 1):
            m.add(f"/network/{region}/router-{i}", Router, role="primary" if i == 1 else "backup")
    return m
