"""Helpers of the driver conformance suite: drivers by name, a small world, a probe, step failures.

:class:`Probe` looks at the devices through the backend's own API (the sim's state; libvirt's domains and
pools, not the driver's inventory), so a test can check that nothing was left behind without trusting the
code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tropic.drivers import Driver, SimDriver, Step
from tropic.errors import DeviceFault
from tropic.model import Model
from tropic.scenario import DatacenterSpec, build_datacenter

LIBVIRT_MISSING = (
    "libvirt-python is not installed: run scripts/install-libvirt.sh "
    "(Debian libvirt-dev + pkg-config, then pip install libvirt-python), as `make test` does"
)


def _can_import_libvirt() -> bool:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return False
    return True


HAVE_LIBVIRT = _can_import_libvirt()
DRIVERS = ["sim", "libvirt"]

REGION = "r1"
H1, H2, H3 = (f"/compute/{REGION}/host-0{i}" for i in (1, 2, 3))
SAN = f"/storage/{REGION}/san-1"
IMG = "img-ubuntu"
R1, R2 = f"/network/{REGION}/router-1", f"/network/{REGION}/router-2"


def small_datacenter() -> Model:
    return build_datacenter(DatacenterSpec(regions=(REGION,), hosts_per_region=3))


def make_driver(kind: str, **options: Any) -> Driver:
    if kind == "sim":
        return SimDriver(**options)
    if not HAVE_LIBVIRT:
        pytest.skip(LIBVIRT_MISSING)
    from tropic.drivers.libvirt import LibvirtDriver

    return LibvirtDriver("test:///default", **options)


class Probe:
    """The devices as the backend itself sees them."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def domains(self, host: str) -> set[str]:
        d = self.driver
        if isinstance(d, SimDriver):
            h = d.hosts[host]
            return set(h["vms"]) | set(h["configs"])
        return {dom.name() for dom in d.connection(host).listAllDomains(0)}  # type: ignore[attr-defined]

    def running(self, host: str) -> set[str]:
        d = self.driver
        if isinstance(d, SimDriver):
            return {n for n, v in d.hosts[host]["vms"].items() if v["state"] == "running"}
        return {dom.name() for dom in d.connection(host).listAllDomains(0) if dom.isActive()}  # type: ignore[attr-defined]

    def volumes(self, san: str) -> set[str]:
        d = self.driver
        if isinstance(d, SimDriver):
            return set(d.sans[san]["volumes"])
        return self._pool_volumes(san, "tropic-volumes")

    def exports(self, san: str) -> set[str]:
        d = self.driver
        if isinstance(d, SimDriver):
            return {n for n, v in d.sans[san]["volumes"].items() if v["exported"]}
        return self._pool_volumes(san, "tropic-exports")

    def imports(self, host: str) -> set[str]:
        d = self.driver
        if isinstance(d, SimDriver):
            return set(d.hosts[host]["volumes"])
        from urllib.parse import unquote

        return {unquote(n) for n in self._pool_volumes(host, "tropic-imports")}

    def _pool_volumes(self, path: str, pool_name: str) -> set[str]:
        conn = self.driver.connection(path)  # type: ignore[attr-defined]
        names = {p.name() for p in conn.listAllStoragePools(0)}
        if pool_name not in names:
            return set()
        return {v.name() for v in conn.storagePoolLookupByName(pool_name).listAllVolumes(0)}


@dataclass
class World:
    kind: str
    model: Model
    driver: Driver
    reference: SimDriver  # the sim run through the same steps: the semantics every driver mirrors
    probe: Probe
    txn: int = 0

    def step(self, path: str, action: str, args: dict[str, Any] | None = None, *, undo: bool = False) -> None:
        self.txn += 1
        self.driver.execute(Step(self.txn, 0, path, action, args or {}, undo))

    def both(self, path: str, action: str, args: dict[str, Any] | None = None) -> None:
        """Run a step on the driver and on the reference sim; their inventories must stay equal."""
        self.step(path, action, args)
        self.reference.execute(Step(self.txn, 0, path, action, args or {}))
        assert self.driver.inventory() == self.reference.inventory()


def fail_step(
    driver: Driver, action: str, *, name: str | None = None, after: bool = False
) -> Callable[[], int]:
    """Make ``driver`` fail forward ``action`` steps (for VM ``name``), before or after their effect.
    Returns a counter of the failures raised."""
    original = driver.execute
    fired = [0]

    def execute(step: Step) -> None:
        hit = step.action == action and not step.undo and (name is None or step.args.get("name") == name)
        if hit and after:
            original(step)
        if hit:
            fired[0] += 1
            raise DeviceFault(f"injected failure of {step.describe()}", path=step.path)
        original(step)

    driver.execute = execute  # type: ignore[method-assign]
    return lambda: fired[0]
