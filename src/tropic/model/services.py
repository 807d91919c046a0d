"""Managed services: a service (e.g. Rhizoma's PsEPR overlay) whose members are VMs the autopilot spawns
and destroys. ``/services/<name>`` holds what the service is (kind, member image and size, candidate hosts
or region scope, member bounds) and which VMs are its members (their uids, stable across migrations).

Member records change through model-only actions (``add_member``/``remove_member``, each the other's
undo), always in the same transaction as the member's spawn or destroy (``procedures/services.py``), so a
member record never outlives its VM. Importing this module registers the kinds into the standard schema;
``/services`` is created by the first ``create_service`` (the root's ``add_service_root`` action).
"""

from __future__ import annotations

from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Undo, Value, action, constraint, undo
from tropic.model.schema import STANDARD
from tropic.model.schema import Root as _StandardRoot

SERVICES = "/services"
SERVICE_KINDS = ("psepr", "replicated")  # replicated: members across regions (tropic.procedures.geo)


class Root(_StandardRoot):
    """The standard root, with the action that creates ``/services`` (kind ``root`` as before)."""

    kind = "root"

    @action(undo="remove_service_root", device=False)
    def add_service_root(self) -> Undo:
        """Create ``/services`` (model only)."""
        self._view.create(SERVICES, ServiceRoot, {})  # (add_child would join "/" and the name as "//")
        return undo()

    @action(undo="add_service_root", device=False)
    def remove_service_root(self) -> Undo:
        if self._view.child_paths(self._view.get(SERVICES, ServiceRoot).path):
            raise ModelError(f"cannot remove {SERVICES}: it still holds services", path=SERVICES)
        self._view.delete(SERVICES)
        return undo()


class ServiceRoot(Resource):
    """``/services``: managed services are added and removed below it."""

    kind = "service_root"

    @action(undo="remove_service", device=False)
    def add_service(
        self,
        *,
        name: str,
        service_kind: str,
        image: str,
        vcpus: int,
        memory_mib: int,
        region: str = "",
        candidates: Value = None,
        min_members: int = 1,
        max_members: int = 10,
        members: Value = None,
        labels: Value = None,
    ) -> Undo:
        where = f"{self.path}/{name}"
        if service_kind not in SERVICE_KINDS:
            raise ModelError(
                f"{where}: unknown service kind {service_kind!r} (known: {', '.join(SERVICE_KINDS)})"
            )
        if vcpus < 1 or memory_mib < 1:
            raise ModelError(f"{where}: member vcpus and memory_mib must be positive", path=where)
        if not 0 <= min_members <= max_members or max_members < 1:
            raise ModelError(
                f"{where}: members must satisfy 0 <= min_members ({min_members}) <= max_members "
                f"({max_members}) and max_members >= 1",
                path=where,
            )
        if name in {p.rsplit("/", 1)[1] for p in self._view.child_paths(self.path)}:
            raise ResourceExists(f"service {where} already exists", path=where)
        self.add_child(
            Service,
            name,
            service_kind=service_kind,
            image=image,
            vcpus=vcpus,
            memory_mib=memory_mib,
            region=region,
            candidates=list(candidates or []),
            min_members=min_members,
            max_members=max_members,
            members=list(members or []),
            labels=dict(labels or {}),
        )
        return undo(name=name)

    @action(undo="add_service", device=False)
    def remove_service(self, *, name: str) -> Undo:
        service = self.child(name, Service)
        if service.members:
            raise ModelError(
                f"cannot remove {service.path}: it still has {len(service.members)} member(s)",
                path=service.path,
            )
        spec = service.snapshot()
        self.remove_child(name)
        return undo(name=name, **spec)


class Service(Resource):
    """A managed service: its members are VMs of ``image`` with ``vcpus``/``memory_mib``, on
    ``candidates`` (host paths; empty: every host of ``region``, or of every region when that is empty)."""

    kind = "service"
    service_kind = Attr(str, doc="what the service is, e.g. psepr (Rhizoma's overlay); the policy it gets")
    image = Attr(str, doc="path of the image members are spawned from")
    vcpus = Attr(int, doc="vCPUs of each member")
    memory_mib = Attr(int, doc="memory of each member, MiB")
    region = Attr(str, "", doc="region scope of the candidates when none are listed; empty: every region")
    candidates = Attr(list, [], doc="host paths members may run on; empty: the region scope")
    min_members = Attr(int, 1, doc="fewest members")
    max_members = Attr(int, 10, doc="most members")
    members = Attr(list, [], doc="uids of the member VMs")
    labels = Attr(dict, {}, doc="operator labels, key -> value")

    @constraint
    def members_within_max(self) -> Iterator[tuple[str, Resource]]:
        """No more members than ``max_members``."""
        if len(self.members) > self.max_members:
            yield (f"service {self.name} has {len(self.members)} members, more than {self.max_members}", self)

    @action(undo="remove_member", device=False)
    def add_member(self, *, vm: str) -> Undo:
        """Record the VM with uid ``vm`` as a member (model only)."""
        if vm in self.members:
            raise ModelError(f"{vm} is already a member of {self.path}", path=self.path)
        self.members = [*self.members, vm]
        return undo(vm=vm)

    @action(undo="add_member", device=False)
    def remove_member(self, *, vm: str) -> Undo:
        """Forget the member VM with uid ``vm`` (model only)."""
        if vm not in self.members:
            raise ModelError(f"{vm} is not a member of {self.path}", path=self.path)
        self.members = [m for m in self.members if m != vm]
        return undo(vm=vm)


for _cls in (Root, ServiceRoot, Service):
    STANDARD.register(_cls)
