"""Host power state: ``power_off_host`` is refused while the host holds VMs or configurations, a
powered-off host takes no VM (placement in simulation skips it, naming the reason; an explicit
destination aborts with ``Host.powered_off_is_empty``), and ``power_on_host`` undoes it."""

from __future__ import annotations

from core.helpers import assert_invariants, spawn, vm
from tropic.drivers import SimDriver
from tropic.model import Host
from tropic.model.fit import Candidate, why_none
from tropic.txn import Controller, State, Transaction

H1, H2, H3 = "/compute/r1/host-01", "/compute/r1/host-02", "/compute/r1/host-03"


def run(c: Controller, procedure: str, args: dict[str, object]) -> Transaction:
    return c.wait(c.submit(procedure, args), 30)


def powered(c: Controller, host: str) -> bool:
    return bool(c.call(lambda: c.model.reader().get(host, Host).powered))


def test_power_off_is_refused_while_the_host_holds_a_vm(ctl: Controller) -> None:
    assert run(ctl, "spawn_vm", spawn("r1", 1, "web")).state is State.COMMITTED
    t = run(ctl, "power_off_host", {"host": H1})
    assert t.state is State.ABORTED and t.error is not None
    assert "cannot be powered off: it holds web" in t.error["message"]
    assert powered(ctl, H1)
    assert_invariants(ctl)


def test_a_powered_off_host_takes_no_vm_and_power_on_undoes_it(ctl: Controller, sim: SimDriver) -> None:
    t = run(ctl, "power_off_host", {"host": H1})
    assert t.state is State.COMMITTED, t.error
    assert not powered(ctl, H1)
    assert run(ctl, "power_off_host", {"host": H1}).state is State.ABORTED  # already off

    t = run(ctl, "spawn_vm", spawn("r1", 1, "web"))
    assert t.state is State.ABORTED and t.violation is not None
    assert t.violation.constraint == "Host.powered_off_is_empty"
    assert run(ctl, "spawn_vm", spawn("r1", 2, "db")).state is State.COMMITTED
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 2, "db"), "dest": H1})
    assert t.state is State.ABORTED and t.violation is not None
    # Placement chosen in simulation never picks the powered-off host.
    t = run(ctl, "migrate_vm", {"vm": vm("r1", 2, "db")})
    assert t.state is State.COMMITTED, t.error
    assert ctl.call(lambda: ctl.model.reader().get(H3, Host).used())[1] > 0

    assert run(ctl, "power_on_host", {"host": H1}).state is State.COMMITTED
    assert powered(ctl, H1)
    assert run(ctl, "power_on_host", {"host": H1}).state is State.ABORTED  # already on
    assert run(ctl, "spawn_vm", spawn("r1", 1, "web")).state is State.COMMITTED
    assert_invariants(ctl)


def test_the_fit_rule_counts_powered_off_hosts() -> None:
    off = Candidate("/h1", 8, 8192, powered=False)
    on = Candidate("/h2", 8, 1024)
    assert not off.fits(1, 512) and on.fits(1, 512)
    why = why_none([off, on], 1, 2048, "in /r")
    assert "1 powered off" in why and "1 without memory" in why
