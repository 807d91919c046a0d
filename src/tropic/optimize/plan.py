"""Turn a target placement into the ordered procedures that reach it from the current one.

:func:`diff_placements` is a pure function of (current assignment, target assignment, VM and host data).
Its steps are the platform's stored procedures: ``destroy_vm`` for VMs the target drops, ``migrate_vm``
for VMs that change host, ``spawn_vm`` for VMs that do not exist yet. The order keeps every intermediate
configuration within host capacity, because each step runs as its own transaction and the transaction
layer rejects one that overloads a host: destroys first (they only free room), then migrations whose
destination has room (a cycle of full hosts is broken by parking one VM on a host with room, which costs
one extra migration), then spawns (the target itself fits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tropic.errors import InvalidArguments
from tropic.optimize.errors import OptimizeError
from tropic.optimize.placement import VM, Host

SPAWN, MIGRATE, DESTROY = "spawn_vm", "migrate_vm", "destroy_vm"


@dataclass(frozen=True)
class PlannedStep:
    """One procedure call of a plan, with the plain-data arguments it will be submitted with."""

    procedure: str
    args: Mapping[str, str | int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"procedure": self.procedure, "args": dict(self.args)}

    def __str__(self) -> str:
        return f"{self.procedure}({', '.join(f'{k}={v!r}' for k, v in self.args.items())})"


def vm_path(host: str, name: str) -> str:
    """The model path of VM ``name`` on ``host``."""
    return f"{host.rstrip('/')}/{name}"


def diff_placements(
    current: Mapping[str, str],
    target: Mapping[str, str],
    vms: Mapping[str, VM],
    hosts: Mapping[str, Host] | None = None,
) -> list[PlannedStep]:
    """The steps that turn ``current`` into ``target`` (both VM name -> host path).

    ``vms`` gives the size and image of every VM named in either assignment; ``hosts`` gives capacities
    so the steps can be ordered to stay within them (without it, steps keep the plain destroy, migrate,
    spawn order and a cycle of migrations is not detected).
    """
    for name in (*current, *target):
        if name not in vms:
            raise InvalidArguments(f"no size or image known for VM {name!r}", path=name)
    if hosts is not None:
        for name, path in (*current.items(), *target.items()):
            if path not in hosts:
                raise InvalidArguments(f"VM {name}: unknown host {path}", path=path)

    steps: list[PlannedStep] = []
    for name in sorted(set(current) - set(target)):
        steps.append(PlannedStep(DESTROY, {"vm": vm_path(current[name], name)}))

    moves = {n: target[n] for n in sorted(current) if n in target and target[n] != current[n]}
    survivors = {n: p for n, p in current.items() if n in target}
    steps.extend(_order_migrations(survivors, moves, vms, hosts))

    for name in sorted(set(target) - set(current)):
        vm = vms[name]
        if not vm.image:
            raise InvalidArguments(f"VM {name} must be spawned but has no image", path=name)
        steps.append(
            PlannedStep(
                SPAWN,
                {
                    "host": target[name],
                    "name": name,
                    "image": vm.image,
                    "vcpus": vm.vcpus,
                    "memory_mib": vm.memory_mib,
                },
            )
        )
    return steps


def _order_migrations(
    survivors: Mapping[str, str],
    moves: Mapping[str, str],
    vms: Mapping[str, VM],
    hosts: Mapping[str, Host] | None,
) -> list[PlannedStep]:
    where = dict(survivors)
    if hosts is None:
        return [PlannedStep(MIGRATE, {"vm": vm_path(where[n], n), "dest": d}) for n, d in moves.items()]
    # Room per host once the destroys have run: only the VMs that survive into the target still use it.
    free_cpu = {p: h.vcpus for p, h in hosts.items()}
    free_mem = {p: h.memory_mib for p, h in hosts.items()}
    for name, path in survivors.items():
        free_cpu[path] -= vms[name].vcpus
        free_mem[path] -= vms[name].memory_mib
    return _schedule(dict(moves), where, vms, free_cpu, free_mem)


def _fits(vm: VM, host: str, free_cpu: Mapping[str, int], free_mem: Mapping[str, int]) -> bool:
    return free_cpu[host] >= vm.vcpus and free_mem[host] >= vm.memory_mib


def _schedule(
    pending: dict[str, str],
    where: dict[str, str],
    vms: Mapping[str, VM],
    free_cpu: dict[str, int],
    free_mem: dict[str, int],
) -> list[PlannedStep]:
    out: list[PlannedStep] = []

    def move(name: str, dest: str) -> None:
        vm = vms[name]
        src = where[name]
        out.append(PlannedStep(MIGRATE, {"vm": vm_path(src, name), "dest": dest}))
        free_cpu[src] += vm.vcpus
        free_mem[src] += vm.memory_mib
        free_cpu[dest] -= vm.vcpus
        free_mem[dest] -= vm.memory_mib
        where[name] = dest

    parks_left = 2 * len(pending)
    while pending:
        progressed = False
        for name in list(pending):
            if _fits(vms[name], pending[name], free_cpu, free_mem):
                move(name, pending.pop(name))
                progressed = True
        if progressed:
            continue
        # Every pending destination stays full until another pending VM leaves it: park one VM on a host
        # with room (preferably one no pending move involves), which unblocks its source host.
        busy = set(pending.values()) | {where[n] for n in pending}
        spot: str | None = None
        for name in pending:
            candidates = sorted(free_cpu, key=lambda h: (h in busy, h))
            spot = next(
                (
                    h
                    for h in candidates
                    if h not in (where[name], pending[name]) and _fits(vms[name], h, free_cpu, free_mem)
                ),
                None,
            )
            if spot is not None:
                move(name, spot)
                break
        parks_left -= 1
        if spot is None or parks_left < 0:
            raise OptimizeError(
                "cannot order the migrations within host capacity: hosts "
                f"{', '.join(sorted(set(pending.values())))} wait on each other and no host has room to park "
                "a VM"
            )
    return out
