"""Places and addresses: the network overlay that keeps a replicated service's public addresses, the
links between regions, and the cross-region live migration of a VM.

* ``/overlay`` (kind ``overlay``): the address pool (``cidr``) and a counter that only grows, so an
  address is never handed out twice (never reused while held, nor after: a released address stays
  retired). ``/overlay/<service>`` (kind ``address_group``) is a replicated service's part of the
  overlay: how its members are spread (``spread``: ``region``, ``failure_domain`` or ``none``, checked as a
  constraint) and their guests' dirty rate (the pre-copy's input). ``/overlay/<service>/<name>`` (kind
  ``address``): one public address, the member (VM uid) holding it and the VM it reaches now.
* ``/links`` (kind ``links``): round-trip times between region locations (a latency matrix) and the
  bandwidth model that turns a round trip into a transfer rate (:meth:`Links.bandwidth_mib_s`).
* ``host`` gains :meth:`Host.live_migrate`: a VM moves to a host of another region, onto the volume
  prepared there (the same-region ``migrate`` moves the volume import instead).

Importing this module registers the kinds into the standard schema. The root's kind is extended by
subclassing, one module after the other (:mod:`tropic.model.services`, :mod:`tropic.model.jobs`, then
this one), so the registered root has every module's actions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from tropic.errors import ModelError, ResourceExists
from tropic.model.base import Attr, Resource, Undo, Value, action, constraint, query, undo, undo_at
from tropic.model.images import ImageRoot
from tropic.model.jobs import Root as _JobsRoot  # the root's actions chain: schema, services, jobs, here
from tropic.model.schema import STANDARD, VM, Region
from tropic.model.schema import Host as _StandardHost

OVERLAY = "/overlay"
LINKS = "/links"
IMAGES = "/images"
SPREADS = ("region", "failure_domain", "none")
DEFAULT_CIDR = "100.64.0.0/10"  # shared address space (RFC 6598): a stand-in for a provider-independent block


def address_name(ip: str) -> str:
    """The resource name of an address: ``ip-100-64-0-1`` (a path segment must be a DNS label)."""
    return "ip-" + ip.replace(".", "-").replace(":", "-")


class Root(_JobsRoot):
    """The root, with the actions that create ``/overlay``, ``/links`` and ``/images`` (model only)."""

    kind = "root"

    @action(undo="remove_overlay_root", device=False)
    def add_overlay_root(self, *, cidr: str = DEFAULT_CIDR) -> Undo:
        try:
            ipaddress.ip_network(cidr)
        except ValueError as e:
            raise ModelError(f"{OVERLAY}: bad address pool {cidr!r}: {e}", path=OVERLAY) from None
        self._view.create(OVERLAY, Overlay, {"cidr": cidr})
        return undo()

    @action(undo="add_overlay_root", device=False)
    def remove_overlay_root(self) -> Undo:
        if self._view.child_paths(OVERLAY):
            raise ModelError(f"cannot remove {OVERLAY}: it still holds address groups", path=OVERLAY)
        cidr = self._view.get(OVERLAY, Overlay).cidr
        self._view.delete(OVERLAY)
        return undo(cidr=cidr)

    @action(undo="remove_links", device=False)
    def add_links(self) -> Undo:
        self._view.create(LINKS, Links, {})
        return undo()

    @action(undo="add_links", device=False)
    def remove_links(self) -> Undo:
        self._view.delete(LINKS)
        return undo()

    @action(undo="remove_image_root", device=False)
    def add_image_root(self) -> Undo:
        self._view.create(IMAGES, ImageRoot, {})
        return undo()

    @action(undo="add_image_root", device=False)
    def remove_image_root(self) -> Undo:
        if self._view.child_paths(IMAGES):
            raise ModelError(f"cannot remove {IMAGES}: it still holds images", path=IMAGES)
        self._view.delete(IMAGES)
        return undo()


class Overlay(Resource):
    """``/overlay``: the public address pool and the groups of addresses below it."""

    kind = "overlay"
    cidr = Attr(str, DEFAULT_CIDR, doc="the pool addresses are taken from")
    next_index = Attr(int, 1, doc="offset in the pool of the next address handed out; only grows")

    @action(undo="give_back_index", device=False)
    def take_index(self) -> Undo:
        """Hand out the next address of the pool (model only): the counter grows, so no address is ever
        handed out twice. Its undo (a rolled-back allocation) gives the offset back."""
        index = self.next_index
        net = ipaddress.ip_network(self.cidr)
        if index >= net.num_addresses - 1:
            raise ModelError(f"{self.path}: the address pool {self.cidr} is exhausted", path=self.path)
        self.next_index = index + 1
        return undo(index=index)

    @action(undo="take_index", device=False)
    def give_back_index(self, *, index: int) -> Undo:
        if self.next_index != index + 1:
            raise ModelError(
                f"{self.path}: address offset {index} is not the last handed out", path=self.path
            )
        self.next_index = index
        return undo()

    @query
    def ip_at(self, index: int) -> str:
        return str(ipaddress.ip_network(self.cidr)[index])

    @action(undo="remove_group", device=False)
    def add_group(
        self, *, name: str, service: str, spread: str = "region", dirty_mib_s: float = 20.0
    ) -> Undo:
        if spread not in SPREADS:
            raise ModelError(
                f"{self.path}/{name}: spread must be one of {', '.join(SPREADS)}", path=self.path
            )
        if dirty_mib_s < 0:
            raise ModelError(f"{self.path}/{name}: dirty_mib_s must be >= 0", path=self.path)
        if self._view.exists(f"{self.path}/{name}"):
            raise ResourceExists(f"address group {self.path}/{name} already exists", path=self.path)
        self.add_child(AddressGroup, name, service=service, spread=spread, dirty_mib_s=float(dirty_mib_s))
        return undo(name=name)

    @action(undo="add_group", device=False)
    def remove_group(self, *, name: str) -> Undo:
        group = self.child(name, AddressGroup)
        if self._view.child_paths(group.path):
            raise ModelError(f"cannot remove {group.path}: it still holds addresses", path=group.path)
        spec = group.snapshot()
        self.remove_child(name)
        return undo(name=name, **spec)


class AddressGroup(Resource):
    """``/overlay/<service>``: a replicated service's addresses, and how its members must be spread."""

    kind = "address_group"
    service = Attr(str, doc="path of the service these addresses belong to")
    spread = Attr(str, "region", doc="members never share a region, a failure domain, or no rule (none)")
    dirty_mib_s = Attr(float, 20.0, doc="the members' memory dirty rate, MiB/s (the pre-copy's input)")

    @query
    def addresses(self) -> Iterator[Address]:
        return self.children(Address)

    @constraint
    def members_spread(self) -> Iterator[tuple[str, Resource]]:
        """Anti-affinity: no two members of the service in one region (or failure domain)."""
        if self.spread == "none":
            return
        seen: dict[str, str] = {}
        for addr in self.children(Address):
            vm = addr.vm
            if not vm:
                continue
            host = vm.rsplit("/", 1)[0]
            if self.spread == "region":
                where = host.rsplit("/", 1)[0]
            else:
                where = self._view.get(host, _StandardHost).failure_domain or host
            if where in seen:
                yield (
                    f"members {seen[where]} and {vm} of {self.service} share {self.spread} {where}",
                    self,
                )
            seen[where] = vm

    @action(undo="remove_address")
    def add_address(self, *, name: str, ip: str, member: str, vm: str) -> Undo:
        """Bind public address ``ip`` to the member VM ``vm`` (the overlay starts routing it there)."""
        if self._view.exists(f"{self.path}/{name}"):
            raise ResourceExists(f"address {ip} is already held ({self.path}/{name})", path=self.path)
        self._view.get(vm, VM)
        self.add_child(Address, name, ip=ip, member=member, vm=vm)
        return undo(name=name)

    @action(undo="add_address")
    def remove_address(self, *, name: str) -> Undo:
        """Unbind the address (it is retired: the pool's counter never hands it out again)."""
        addr = self.child(name, Address)
        spec = addr.snapshot()
        self.remove_child(name)
        return undo(name=name, **spec)


class Address(Resource):
    """One public address of a member: it never changes while the member lives; only where it leads."""

    kind = "address"
    ip = Attr(str, doc="the public address")
    member = Attr(str, doc="uid of the member VM holding it")
    vm = Attr(str, doc="path of the VM the address reaches now")

    @action(undo="switch_address")
    def switch_address(self, *, vm: str) -> Undo:
        """Point the address at ``vm`` (the member's new place after a migration)."""
        target = self._view.get(vm, VM)
        if target.uid != self.member:
            raise ModelError(f"{vm} is not member {self.member} holding {self.ip}", path=self.path)
        old = self.vm
        self.vm = vm
        return undo(vm=old)


class Links(Resource):
    """``/links``: round trips between region locations and the transfer rate they allow.

    The rate between two regions is ``min(bandwidth_mib_s, window_mib / rtt_s)``: a TCP stream is bound
    by its window over the round trip (the window of a tuned long-haul transfer), and the path by its
    capacity. Within a location (or when the round trip is 0) the capacity alone."""

    kind = "links"
    rtt_ms = Attr(dict, {}, doc="location -> location -> round trip in ms (a latency matrix)")
    default_rtt_ms = Attr(float, 150.0, doc="round trip between locations the matrix does not list")
    local_rtt_ms = Attr(float, 1.0, doc="round trip within one location (when the matrix has none)")
    bandwidth_mib_s = Attr(float, 1250.0, doc="capacity of an inter-region path, MiB/s (10 Gbit/s)")
    window_mib = Attr(float, 16.0, doc="transfer window, MiB: bounds a stream's rate to window / rtt")

    @action(undo="set_links", device=False)
    def set_links(
        self,
        *,
        rtt_ms: Value = None,
        default_rtt_ms: float = 150.0,
        local_rtt_ms: float = 1.0,
        bandwidth_mib_s: float = 1250.0,
        window_mib: float = 16.0,
    ) -> Undo:
        """Replace the matrix and the bandwidth model (model only)."""
        if bandwidth_mib_s <= 0 or window_mib <= 0 or default_rtt_ms < 0 or local_rtt_ms < 0:
            raise ModelError(
                f"{self.path}: bandwidth and window must be > 0, round trips >= 0", path=self.path
            )
        old = self.snapshot()
        self.rtt_ms = dict(rtt_ms or {})
        self.default_rtt_ms = float(default_rtt_ms)
        self.local_rtt_ms = float(local_rtt_ms)
        self.bandwidth_mib_s = float(bandwidth_mib_s)
        self.window_mib = float(window_mib)
        return undo(**old)

    @query
    def rtt(self, a: str, b: str) -> float:
        row = self.rtt_ms.get(a, {})
        if b in row:
            return float(row[b])
        back = self.rtt_ms.get(b, {})
        if a in back:
            return float(back[a])
        return self.local_rtt_ms if a == b else self.default_rtt_ms

    @query
    def bandwidth(self, a: str, b: str) -> float:
        rtt_s = self.rtt(a, b) / 1000.0
        cap = self.bandwidth_mib_s
        return cap if rtt_s <= 0 else min(cap, self.window_mib / rtt_s)


class Host(_StandardHost):
    """The standard host, with the cross-region live migration (kind ``host`` as before)."""

    kind = "host"

    @action(undo="live_migrate")
    def live_migrate(
        self,
        *,
        name: str,
        dest: str,
        volume: str,
        image: str,
        transfer_s: float = 0.0,
        downtime_s: float = 0.0,
        rounds: int = 0,
        sent_mib: float = 0.0,
    ) -> Undo:
        """Live-migrate VM ``name`` to host ``dest`` (another region): its memory is pre-copied while it
        runs, then it is paused for ``downtime_s`` and resumed at ``dest`` on ``volume`` (prepared and
        imported there beforehand), booted from ``image`` (the replica in that region). The pre-copy's
        figures (``transfer_s``, ``downtime_s``, ``rounds``, ``sent_mib``) are computed in simulation
        (:func:`tropic.geo.precopy.precopy`) and kept in the action log."""
        vm = self.child(name, VM)
        target = self._view.get(dest, _StandardHost)
        if target.path == self.path:
            raise ModelError(f"{vm.path} is already on {dest}", path=vm.path)
        if self.driver and target.driver and self.driver != target.driver:
            raise ModelError(
                f"cannot live-migrate {vm.path} to {dest}: {self.path} is driven by the {self.driver} "
                f"backend and {dest} by {target.driver}",
                path=vm.path,
            )
        if volume and volume not in target.volumes:
            raise ModelError(f"volume {volume} is not imported on {dest}", path=dest)
        spec = vm.snapshot()
        old_volume, old_image = spec["volume"], spec["image"]
        spec["volume"], spec["image"] = volume, image
        self.remove_child(name)
        self._forget_cordoned(name)
        target.add_child(VM, name, **spec)
        return undo_at(
            dest,
            name=name,
            dest=self.path,
            volume=old_volume,
            image=old_image,
            transfer_s=transfer_s,
            downtime_s=downtime_s,
            rounds=rounds,
            sent_mib=sent_mib,
        )


def region_of(host_path: str) -> str:
    """``/compute/<region>`` of a host path."""
    return host_path.rsplit("/", 1)[0]


def location_of(region: Region) -> str:
    """The key of a region in the latency matrix: its ``location``, else its name."""
    return region.location or region.name


for _cls in (Root, Overlay, AddressGroup, Address, Links, Host):
    STANDARD.register(_cls)
