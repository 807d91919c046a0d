"""Managed-service procedures: create and delete a service (``/services/<name>``), and spawn or destroy one
of its members, the VM and its member record in **one** transaction (so a member record never outlives
its VM, and a failed spawn leaves no record). The autopilot's actuator runs ``spawn_service_member`` for
each :class:`~tropic.autopilot.base.SpawnRequest` of a plan whose ``service`` is set, and
``destroy_service_member`` for each of its ``destroys``."""

from __future__ import annotations

from typing import Annotated

from tropic.errors import ModelError
from tropic.model import VM, Host, View
from tropic.model.services import SERVICES, Root, Service, ServiceRoot
from tropic.procedures.base import Name, ProcedureFn
from tropic.procedures.standard import MAX_VM_NAME_LENGTH, destroy_vm, spawn_vm


def _service(view: View, service: str) -> Service:
    path = service if service.startswith("/") else f"{SERVICES}/{service}"
    return view.get(path, Service)


def create_service(
    view: View,
    *,
    name: Annotated[str, Name()],
    image: str,
    vcpus: int,
    memory_mib: int,
    service_kind: str = "psepr",
    region: str = "",
    candidates: str = "",
    min_members: int = 1,
    max_members: int = 10,
) -> None:
    """Define a managed service (no member yet: the autopilot spawns them). ``candidates``: host paths
    separated by commas (empty: every host of ``region``, or of every region when that is empty)."""
    hosts = [c.strip() for c in candidates.split(",") if c.strip()]
    for h in hosts:
        view.get(h, Host)  # each candidate must be a host
    if not view.exists(SERVICES):
        view.get("/", Root).add_service_root()
    view.get(SERVICES, ServiceRoot).add_service(
        name=name,
        service_kind=service_kind,
        image=image,
        vcpus=vcpus,
        memory_mib=memory_mib,
        region=region,
        candidates=hosts,
        min_members=min_members,
        max_members=max_members,
    )


def delete_service(view: View, *, service: str) -> None:
    """Destroy every member VM of ``service`` (a name or a path) and remove the service, in one
    transaction."""
    svc = _service(view, service)
    for uid in list(svc.members):
        destroy_service_member(view, service=svc.path, vm=uid)
    view.get(SERVICES, ServiceRoot).remove_service(name=svc.name)


def spawn_service_member(
    view: View,
    *,
    service: str,
    name: Annotated[str, Name(MAX_VM_NAME_LENGTH)],
    host: str,
) -> None:
    """Spawn VM ``name`` on ``host`` from the service's image and size, and record it as a member."""
    svc = _service(view, service)
    if svc.candidates and host not in svc.candidates:
        raise ModelError(f"{host} is not a candidate host of {svc.path}", path=svc.path)
    spawn_vm(view, name=name, image=svc.image, vcpus=svc.vcpus, memory_mib=svc.memory_mib, host=host)
    svc.add_member(vm=view.get(f"{host}/{name}", VM).uid)


def destroy_service_member(view: View, *, service: str, vm: str) -> None:
    """Destroy member ``vm`` (a path, a name or the uid) of ``service`` and forget it."""
    svc = _service(view, service)
    v = view.resolve(vm, VM)
    uid = v.uid
    if uid not in svc.members:
        raise ModelError(f"{v.path} is not a member of {svc.path}", path=svc.path)
    destroy_vm(view, vm=v.path)
    svc.remove_member(vm=uid)


SERVICE_PROCEDURES: tuple[ProcedureFn, ...] = (
    create_service,
    delete_service,
    spawn_service_member,
    destroy_service_member,
)
