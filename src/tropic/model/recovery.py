"""A host's recovery when it dies: the model actions of declaring it failed and of rebuilding its VMs
elsewhere (``tropic.procedures.rebuild``), and of removing the stale domains it holds when it comes back.

A mixin of :class:`tropic.model.Host`, kept apart from the schema's everyday actions. A failed host may
still hold VMs (unlike a powered-off one); it takes none (the fit rule skips it), and the only way its VMs
leave is a rebuild: ``recreate_vm`` on the destination moves the VM's record there, keeping its name, uid,
size, image, volume, state and labels; ``release_vm`` (model only: the dead device answers nothing)
forgets the failed host's configuration and volume import last.
"""

from __future__ import annotations

from typing import ClassVar

from tropic.errors import ModelError
from tropic.model.base import Attr, Resource, Undo, Value, action, undo

# The VM attributes a rebuild passes to the device (and checks against the record).
_REBUILT = ("vcpus", "memory_mib", "image", "volume", "state", "uid", "labels")


class HostRecovery(Resource):
    """Declaring a host failed or recovered, rebuilding its VMs elsewhere, discarding stale domains."""

    vm_class: ClassVar[type[Resource]]  # the schema's VM (set by Host: the schema imports this module)
    configs: list[str]  # declared by Host
    volumes: list[str]
    cordoned: bool
    cordon_vms: list[str]
    failed = Attr(bool, False, doc="declared dead (failed, unreachable): takes no VM; its VMs are rebuilt")

    @action(undo="declare_recovered")
    def declare_failed(self) -> Undo:
        """Record that the host is dead (lost power, failed, unreachable) while it may still hold VMs: it
        takes no VM, and its VMs can only be rebuilt elsewhere (``rebuild_vm``). The device step checks
        the host does not answer (a driver that can tell refuses a live host)."""
        if self.failed:
            raise ModelError(f"{self.path} is already declared failed", path=self.path)
        self.failed = True
        return undo()

    @action(undo="declare_failed")
    def declare_recovered(self) -> Undo:
        """The host answers again (its VMs not rebuilt yet are still its own)."""
        if not self.failed:
            raise ModelError(f"{self.path} is not declared failed", path=self.path)
        self.failed = False
        return undo()

    @action(undo="unrecreate_vm")
    def recreate_vm(
        self,
        *,
        name: str,
        source: str,
        vcpus: int,
        memory_mib: int,
        image: str,
        volume: str,
        state: str,
        uid: str = "",
        labels: Value = None,
    ) -> Undo:
        """Define and boot here VM ``name`` of the failed host ``source``, from its volume (already
        imported here), keeping its name, uid, size, image, volume, state and labels. The source keeps
        its configuration and volume import (its record of the VM) until ``release_vm``."""
        src = self._view.get(source, type(self))
        vm = src.child(name, self.vm_class)
        if not src.failed:
            raise ModelError(
                f"cannot rebuild {vm.path}: its host {source} is alive; migrate it instead", path=vm.path
            )
        spec = vm.snapshot()
        asked = {"vcpus": vcpus, "memory_mib": memory_mib, "image": image, "volume": volume, "state": state}
        asked.update(uid=uid, labels=dict(labels or {}))
        differs = sorted(k for k, v in asked.items() if spec[k] != v)
        if differs:
            raise ModelError(
                f"rebuild of {vm.path}: arguments differ from its record: {differs}", path=vm.path
            )
        if volume and volume not in self.volumes:
            raise ModelError(f"volume {volume} is not imported on {self.path}", path=self.path)
        src.remove_child(name)
        self.add_child(self.vm_class, name, **spec)
        if name not in self.configs:
            self.configs = [*self.configs, name]
        return undo(name=name, source=source, volume=volume)

    @action(undo="recreate_vm")
    def unrecreate_vm(self, *, name: str, source: str, volume: str = "") -> Undo:
        """Undo a rebuild: the VM defined here is deleted and its record goes back to ``source``."""
        vm = self.child(name, self.vm_class)
        spec = vm.snapshot()
        self.remove_child(name)
        self.configs = [c for c in self.configs if c != name]
        self._view.get(source, type(self)).add_child(self.vm_class, name, **spec)
        return undo(name=name, source=source, **{k: spec[k] for k in _REBUILT})

    @action(undo="restore_domain")
    def discard_domain(self, *, name: str, vcpus: int, memory_mib: int) -> Undo:
        """Repair: delete from this host's device a VM the model does not hold here, whose name the model
        gives to another VM of the region (a host that came back after its VMs were rebuilt elsewhere).
        Nothing changes in the model."""
        if self._view.exists(f"{self.path}/{name}"):
            raise ModelError(f"{self.path}/{name} is a VM of the model, not a stale domain", path=self.path)
        return undo(name=name, vcpus=vcpus, memory_mib=memory_mib)

    @action(undo="discard_domain")
    def restore_domain(self, *, name: str, vcpus: int, memory_mib: int) -> Undo:
        """Undo of :meth:`discard_domain`: the stale domain is defined again (stopped)."""
        if self._view.exists(f"{self.path}/{name}"):
            raise ModelError(f"{self.path}/{name} is a VM of the model, not a stale domain", path=self.path)
        return undo(name=name, vcpus=vcpus, memory_mib=memory_mib)

    @action(undo="restore_vm_record", device=False)
    def release_vm(self, *, name: str, volume: str = "") -> Undo:
        """Forget this failed host's configuration and volume import of VM ``name`` (rebuilt elsewhere):
        model only, the host does not answer. Its device, if it comes back, holds a stale domain that
        the reconciler reports and ``repair`` removes."""
        if not self.failed:
            raise ModelError(f"{self.path} is alive: its VMs are released by the device", path=self.path)
        self.configs = [c for c in self.configs if c != name]
        if volume:
            self.volumes = [v for v in self.volumes if v != volume]
        if name in self.cordon_vms:
            self.cordon_vms = [n for n in self.cordon_vms if n != name]
        return undo(name=name, volume=volume)

    @action(undo="release_vm", device=False)
    def restore_vm_record(self, *, name: str, volume: str = "") -> Undo:
        """Undo of :meth:`release_vm`: the configuration and volume import are recorded again."""
        if name not in self.configs:
            self.configs = [*self.configs, name]
        if volume and volume not in self.volumes:
            self.volumes = [*self.volumes, volume]
        if self.cordoned and name not in self.cordon_vms:
            self.cordon_vms = sorted([*self.cordon_vms, name])
        return undo(name=name, volume=volume)
