"""The inventory file's structure as pydantic models: regions, hosts, storage hosts (with images), networks
(with routers) and existing VMs, every field typed and no unknown field allowed.

Types are strict (``"16"`` is not 16: a file is not a command line); the cross-references (a host's
region, a VM's image, a router's next hop) and capacities are checked by :mod:`tropic.inventory.check`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tropic.model.names import name_error
from tropic.procedures.inventory import DRIVER_KINDS as DRIVER_KINDS
from tropic.procedures.jobs import MAX_JOB_NAME_LENGTH
from tropic.procedures.standard import MAX_VM_NAME_LENGTH


def _name(value: str) -> str:
    problem = name_error(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _vm_name(value: str) -> str:
    problem = name_error(value, MAX_VM_NAME_LENGTH)
    if problem is not None:
        raise ValueError(problem)
    return value


def _driver(value: str) -> str:
    if value and value not in DRIVER_KINDS:
        raise ValueError(f"unknown driver {value!r}: use one of {', '.join(DRIVER_KINDS)} (or leave it out)")
    return value


def _job_name(value: str) -> str:
    problem = name_error(value, MAX_JOB_NAME_LENGTH)
    if problem is not None:
        raise ValueError(problem)
    return value


Name = Annotated[str, AfterValidator(_name)]
JobName = Annotated[str, AfterValidator(_job_name)]
VMName = Annotated[str, AfterValidator(_vm_name)]
DriverKind = Annotated[str, AfterValidator(_driver)]
Labels = dict[str, str]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RegionSpec(_Spec):
    """A region: ``/compute/<name>`` and ``/storage/<name>``."""

    name: Name
    location: str = Field(default="", description="key of the latency matrix, e.g. an AWS region code")
    timezone: str = ""
    provider: str = ""
    labels: Labels = Field(default_factory=dict)


class HostSpec(_Spec):
    """A hypervisor host: ``/compute/<region>/<name>``. Capacity left out comes from the device."""

    name: Name
    region: str
    driver: DriverKind = ""
    uri: str = ""
    cpus: Annotated[int, Field(ge=1)] | None = None
    memory_mib: Annotated[int, Field(ge=1)] | None = None
    cpu_overcommit: Annotated[float, Field(gt=0)] = 4.0
    failure_domain: str = ""
    labels: Labels = Field(default_factory=dict)
    cordoned: bool = False


class ImageSpec(_Spec):
    name: Name
    size_gib: Annotated[int, Field(ge=1)] = 10


class StorageSpec(_Spec):
    """A storage host (SAN): ``/storage/<region>/<name>``, with the images it holds."""

    name: Name
    region: str
    driver: DriverKind = ""
    uri: str = ""
    capacity_gib: Annotated[int, Field(ge=1)] = 100_000
    labels: Labels = Field(default_factory=dict)
    images: list[ImageSpec] = Field(default_factory=list)


class RouterSpec(_Spec):
    name: Name
    role: Literal["primary", "backup"] = "primary"
    next_hop: str = Field(default="", description="name of another router of the same network")
    driver: DriverKind = ""


class NetworkSpec(_Spec):
    """A network: ``/network/<name>``, with its routers."""

    name: Name
    driver: DriverKind = ""
    cidr: str = ""
    routers: list[RouterSpec] = Field(default_factory=list)


class VMSpec(_Spec):
    """A VM that already exists: ``/compute/<host's region>/<host>/<name>``."""

    name: VMName
    host: str
    vcpus: Annotated[int, Field(ge=1)]
    memory_mib: Annotated[int, Field(ge=1)]
    image: str = Field(default="", description="<storage host>/<image> in the host's region")
    state: Literal["running", "stopped"] = "running"
    labels: Labels = Field(default_factory=dict)


class JobSpec(_Spec):
    """A replicated job: ``/jobs/<name>``, its ``replicas`` placed in distinct failure domains."""

    name: JobName
    program: Annotated[list[str], Field(min_length=1, description="the program's argv")]
    replicas: Annotated[int, Field(ge=1, le=100)] = 3
    failure_domain: Literal["host", "rack", "region"] = "host"
    vcpus: Annotated[int, Field(ge=1)] = 1
    memory_mib: Annotated[int, Field(ge=1)] = 512
    region: str = Field(default="", description="only place replicas in this region (empty: any)")


class Fleet(_Spec):
    """A whole inventory file."""

    regions: list[RegionSpec] = Field(default_factory=list)
    hosts: list[HostSpec] = Field(default_factory=list)
    storage: list[StorageSpec] = Field(default_factory=list)
    networks: list[NetworkSpec] = Field(default_factory=list)
    vms: list[VMSpec] = Field(default_factory=list)
    jobs: list[JobSpec] = Field(default_factory=list)

    def region_of_host(self, host: str) -> str | None:
        """The region of the host named ``host`` when exactly one host has that name."""
        regions = {h.region for h in self.hosts if h.name == host}
        return regions.pop() if len(regions) == 1 else None
