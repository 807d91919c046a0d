"""The main scenario (``tropic demo``): each chapter shows one guarantee on a generated datacenter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tropic.drivers.base import Driver
from tropic.drivers.sim import Fault, SimDriver
from tropic.model import Model, project
from tropic.model.generate import DatacenterSpec, build_datacenter, host_path, image_path
from tropic.reconcile import Policies, Policy, Reconciler
from tropic.txn import Controller, Simulation, State, Transaction
from tropic.txn.worker import Deadlines, LocalExecutor

US, EU, AP = "us-east", "eu-west", "ap-south"


@dataclass(slots=True)
class DemoResult:
    summary: dict[str, Any] = field(default_factory=dict)
    chapters: list[dict[str, Any]] = field(default_factory=list)


def short(path: str) -> str:
    """A path without its family prefix, for narrow terminals."""
    for prefix in ("/compute/", "/storage/", "/network/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _spawn(host: str, name: str, region: str, memory_mib: int = 4096, vcpus: int = 2) -> dict[str, Any]:
    return {"host": host, "name": name, "image": image_path(region), "vcpus": vcpus, "memory_mib": memory_mib}


class Demo:
    """Runs the chapters; prints with rich unless quiet (``--json``)."""

    def __init__(
        self,
        console: Console | None,
        *,
        driver: Driver | None = None,
        latency: float = 0.05,
        model: Model | None = None,
    ) -> None:
        self.console = console
        self.model = model or build_datacenter(DatacenterSpec())
        if driver is None:
            sim = SimDriver(seed=7, latency=latency)
            sim.load(project(self.model))
            driver = sim
        self.driver = driver
        # Device calls have deadlines; the drift chapter hangs a resize on the sim, abandoned after 1 s.
        deadlines = (
            Deadlines(actions={"resize": 1.0, "migrate": 900.0}) if isinstance(driver, SimDriver) else None
        )
        executor = LocalExecutor(driver, 8, deadlines=deadlines)
        self.controller = Controller(self.model, driver, workers=8, executor=executor)
        self.result = DemoResult()
        self.drift_found = 0
        self.drift_resolved = 0

    # --- output helpers --------------------------------------------------------------------------------
    def say(self, *parts: Any) -> None:
        if self.console is not None:
            self.console.print(*parts)

    def chapter(self, title: str, text: str) -> None:
        self.say()
        self.say(Panel(text, title=f"[bold]{title}", expand=False))

    def show(self, txns: list[Transaction]) -> None:
        if self.console is None:
            return
        table = Table(show_header=True, header_style="bold")
        for col in ("txn", "procedure", "target", "state", "deferred", "ms", "note"):
            table.add_column(col)
        for t in txns:
            target = str(t.args.get("host") or t.args.get("vm") or t.args.get("router") or "")
            if "name" in t.args:
                target = f"{target}/{t.args['name']}"
            target = short(target)
            lat = t.latency_s
            note = ""
            if t.violation is not None:
                note = f"{t.violation.constraint} on {short(t.violation.path)}"
            elif t.error:
                note = str(t.error.get("message", ""))
            style = {"COMMITTED": "green", "ABORTED": "yellow", "FAILED": "red"}.get(t.state.value, "")
            table.add_row(
                str(t.id),
                t.procedure,
                target,
                f"[{style}]{t.state.value}[/]",
                str(t.deferrals),
                "" if lat is None else f"{lat * 1000:.0f}",
                note,
            )
        self.console.print(table)

    def show_plan(self, sim: Simulation) -> None:
        if self.console is None:
            return
        table = Table(title=f"plan of {sim.procedure}", header_style="bold")
        for col in ("#", "action", "on", "args", "undo"):
            table.add_column(col)
        for i, a in enumerate(sim.actions):
            args = ", ".join(f"{k}={short(v) if isinstance(v, str) else v}" for k, v in a.args.items())
            table.add_row(str(i), a.action, short(a.path), args, a.undo_action)
        self.console.print(table)
        locks = sim.locks()
        self.say(f"locks: write {sorted(locks.writes)}, read {sorted(locks.reads)}")
        if sim.violations:
            for v in sim.violations:
                self.say(f"[red]violation[/] {v.constraint} on {v.path}: {v.message}")

    def run_all(self, procedure: str, jobs: list[dict[str, Any]]) -> list[Transaction]:
        """Submit all at once (so they can run concurrently), then wait for each."""
        out = [self.controller.submit(procedure, a, submitter="demo") for a in jobs]
        for t in out:
            self.controller.wait(t, 60)
        return out

    # --- the scenario -----------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        c = self.controller
        with c:
            regions = len(DatacenterSpec().regions)
            self.say(
                f"[bold]tropic demo[/]: {self.model.count('host')} hosts in {regions} regions, "
                f"driver [cyan]{self.driver.name}[/]"
            )
            self.ch_spawn(c)
            self.ch_migrate(c)
            self.ch_plan(c)
            self.ch_constraint(c)
            self.ch_router(c)
            self.ch_rollback(c)
            self.ch_concurrency(c)
            self.ch_drift(c)
            c.drain(60)
            report = c.check()
        counters = c.counters.to_dict()
        summary: dict[str, Any] = {
            "committed": counters["committed"],
            "aborted": counters["aborted"],
            "rolled_back": counters["rolled_back"],
            "failed": counters["failed"],
            "deferred": counters["deferred"],
            "orphans": len(report["orphans"]),
            "consistent": report["consistent"],
            "violations": len(report["violations"]),
            "driver": self.driver.name,
            "vms": self.model.count("vm"),
            "drift_found": self.drift_found,
            "drift_resolved": self.drift_resolved,
        }
        self.result.summary = summary
        self.chapter(
            "Summary",
            "\n".join(f"{k}: {v}" for k, v in summary.items())
            + "\n\nlogical model == devices, and no orphan left on any device."
            if report["consistent"] and not report["orphans"]
            else f"INCONSISTENT: {report['differences']}",
        )
        return self.result

    def _record(self, name: str, txns: list[Transaction], **extra: Any) -> None:
        self.result.chapters.append(
            {"chapter": name, "transactions": [{"id": t.id, "state": t.state.value} for t in txns], **extra}
        )

    def ch_spawn(self, c: Controller) -> None:
        self.chapter(
            "1. Spawn",
            "spawn_vm = clone image -> export volume -> import volume on the host -> create and start VM, "
            "one ACID transaction each, on hosts in three regions (run in parallel).",
        )
        jobs = []
        for region in (US, EU, AP):
            for i in (1, 2):
                jobs.append(_spawn(host_path(region, i), f"web-{region}-{i}", region))
        txns = self.run_all("spawn_vm", jobs)
        self.show(txns)
        self._record("spawn", txns)

    def ch_migrate(self, c: Controller) -> None:
        self.chapter(
            "2. Migrate",
            "migrate_vm = create config on destination -> migrate -> delete config on source; "
            "its undo migrates back and deletes the destination config.",
        )
        vm = f"{host_path(US, 1)}/web-{US}-1"
        t = c.submit("migrate_vm", {"vm": vm, "dest": host_path(US, 3)}, submitter="demo")
        c.wait(t, 60)
        self.show([t])
        self._record("migrate", [t])

    def ch_plan(self, c: Controller) -> None:
        self.chapter(
            "3. Plan (dry-run)", "Simulate only: the exact action log apply would run, and its locks."
        )
        sim = c.plan("spawn_vm", _spawn(host_path(EU, 3), "db-1", EU, memory_mib=8192))
        self.show_plan(sim)
        self.result.chapters.append({"chapter": "plan", "plan": sim.to_dict()})

    def ch_constraint(self, c: Controller) -> None:
        self.chapter(
            "4. Constraint refused before any device",
            "A 64 GiB VM on a 32 GiB host violates Host.memory_fits in simulation: ABORTED, no device call.",
        )
        sim = self.driver if isinstance(self.driver, SimDriver) else None
        calls_before = sim.calls if sim is not None else 0
        t = c.submit("spawn_vm", _spawn(host_path(AP, 3), "huge-1", AP, memory_mib=65536), submitter="demo")
        c.wait(t, 60)
        self.show([t])
        calls = None if sim is None else sim.calls - calls_before
        if calls is not None:
            self.say(f"device calls during this transaction: {calls}")
        self._record("constraint", [t], device_calls=calls)

    def ch_router(self, c: Controller) -> None:
        self.chapter(
            "5. The EC2 rule",
            "A primary router's next hop must not be a backup router: the change is refused in simulation.",
        )
        t = c.submit(
            "set_next_hop",
            {"router": f"/network/{US}/router-1", "next_hop": f"/network/{US}/router-2"},
            submitter="demo",
        )
        c.wait(t, 60)
        self.show([t])
        self._record("router", [t])

    def ch_rollback(self, c: Controller) -> None:
        self.chapter(
            "6. Failure on the last step, rolled back",
            "The hypervisor fails create_vm (think Xen 'out of memory'): the completed steps are undone in "
            "reverse (unimport, unexport, delete volume) and the logical model is restored. No orphans.",
        )
        sim = self.driver if isinstance(self.driver, SimDriver) else None
        fault = None
        if sim is not None:
            fault = sim.inject(Fault(action="create_vm", match={"name": "flaky-1"}, message="out of memory"))
        elif hasattr(self.driver, "customize_domain"):
            # libvirt: make libvirt itself refuse to define this one domain (a real device failure)
            from tropic.drivers.libvirt import refuse_domains

            self.driver.customize_domain = refuse_domains("flaky-1")
        t = c.submit("spawn_vm", _spawn(host_path(EU, 4), "flaky-1", EU), submitter="demo")
        c.wait(t, 60)
        if sim is not None and fault is not None:
            sim.faults.remove(fault)
        self.show([t])
        if self.console is not None:
            steps = Table(title=f"steps of transaction {t.id}", header_style="bold")
            for col in ("#", "action", "on", "direction", "status"):
                steps.add_column(col)
            for s in t.steps:
                steps.add_row(
                    str(s.index),
                    s.action,
                    short(s.path),
                    "undo" if s.undo else "do",
                    "[green]done" if s.status == "done" else "[red]failed",
                )
            self.console.print(steps)
            report = c.check()
            self.say(f"orphans on the devices: {len(report['orphans'])}; consistent: {report['consistent']}")
        self._record("rollback", [t])

    def ch_concurrency(self, c: Controller) -> None:
        self.chapter(
            "7. Isolation",
            "Three spawns on the same host take the same lock: two are DEFERRED and run after the first "
            "(FIFO). Spawns on other hosts run in parallel with them.",
        )
        started = time.monotonic()
        jobs = [_spawn(host_path(AP, 1), f"batch-same-{i}", AP) for i in range(3)]
        jobs += [
            _spawn(
                host_path(AP, 2 + i % 2) if i < 2 else host_path(US, 4),
                f"batch-other-{i}",
                AP if i < 2 else US,
            )
            for i in range(3)
        ]
        txns = self.run_all("spawn_vm", jobs)
        elapsed = time.monotonic() - started
        self.show(txns)
        deferred = [t for t in txns if t.deferrals]
        self.say(
            f"{len(deferred)} deferred, all {sum(t.state is State.COMMITTED for t in txns)} committed"
            f" in {elapsed:.2f} s"
        )
        self._record("concurrency", txns, elapsed_s=round(elapsed, 3))

    def ch_drift(self, c: Controller) -> None:
        self.chapter(
            "8. Drift: detected, fenced, repaired",
            "Devices change behind the controller's back. A reconciler compares the model with every device "
            "5 times a second; drift is fenced (no transaction may act on it) until it is reloaded "
            "(device -> model) or repaired (model -> device, by a compensating transaction). Policy here: "
            "restart crashed VMs on its own, report everything else to the operator.",
        )
        sim = self.driver if isinstance(self.driver, SimDriver) else None
        if sim is None:
            self.ch_drift_real(c)
            return
        rec = Reconciler(c, interval=0.2, device_timeout=2.0, policies=Policies(rules={"vm": Policy.REPAIR}))
        crashed = f"{host_path(US, 2)}/web-{US}-2"
        rebooted = host_path(AP, 1)
        volume = f"/storage/{EU}/san-1/vol-web-{EU}-2"
        vm_on_volume = f"{host_path(EU, 2)}/web-{EU}-2"
        with rec:
            # A VM crashes and a host reboots: its VMs are down. Policy: restart them.
            restarted = [
                crashed,
                *(f"{rebooted}/{n}" for n in c.call(lambda: self.model.kids.get(rebooted, ()))),
            ]
            sim.crash_vm(crashed)
            sim.reboot_host(rebooted)
            down = len(restarted) - 1
            self.say(f"out of band: {short(crashed)} crashed; {short(rebooted)} rebooted ({down} VMs down)")
            rec.wait_until(lambda: _resolved(rec, restarted), 30)
            self.show_resolved(rec, restarted)
            # An administrator deletes a volume by hand. Policy: report; the operator repairs.
            sim.drop_volume(volume)
            self.say(f"out of band: an administrator deleted {short(volume)}")
            rec.wait_until(lambda: volume in c.fenced, 30)
            self.show_drift(rec.records(volume))
            t = c.wait(c.submit("destroy_vm", {"vm": vm_on_volume}, submitter="demo"), 60)
            self.say(f"destroy_vm {short(vm_on_volume)} while its volume is fenced:")
            self.show([t])
            repair = rec.repair(volume, submitter="demo")
            self.say(
                f"tropic repair {short(volume)}: "
                + ", ".join(f"txn {x['id']} {x['procedure']} {x['state']}" for x in repair.transactions)
                + f"; consistent: {repair.consistent}; unfenced: {[short(p) for p in repair.unfenced]}"
            )
            # A device stops answering: the step is abandoned at its deadline and rolled back.
            hang = sim.hang(crashed, action="resize", times=1)
            t = c.submit("resize_vm", {"vm": crashed, "vcpus": 4, "memory_mib": 8192}, submitter="demo")
            c.wait(t, 60)
            sim.release(hang, proceed=False)
            self.say(f"{short(crashed)} hangs on resize: abandoned after its 1 s deadline, then rolled back")
            self.show([t])
            self.drift_resolved = len(rec.history)
            self.drift_found = self.drift_resolved + len(rec.records())
        self._record("drift", [t], drift_found=self.drift_found, drift_resolved=self.drift_resolved)

    def ch_drift_real(self, c: Controller) -> None:
        """On a real driver: an administrator shuts a VM down behind tropic's back (through the driver, not
        a transaction); the reconciler finds it and its policy starts the VM again."""
        vm = f"{host_path(US, 2)}/web-{US}-2"
        rec = Reconciler(c, interval=0.2, device_timeout=10.0, policies=Policies(rules={"vm": Policy.REPAIR}))
        with rec:
            self.driver.stop(vm, {})
            self.say(f"out of band: {short(vm)} was shut down on {self.driver.name}, not by tropic")
            rec.wait_until(lambda: _resolved(rec, [vm]), 60)
            self.show_resolved(rec, [vm])
            self.drift_resolved = len(rec.history)
            self.drift_found = self.drift_resolved + len(rec.records())
        self.say("(deleted volumes and hung devices are simulated: the sim driver shows them)")
        self.result.chapters.append(
            {"chapter": "drift", "drift_found": self.drift_found, "drift_resolved": self.drift_resolved}
        )

    def show_drift(self, drifts: list[Any]) -> None:
        if self.console is None:
            return
        table = Table(title="drift", header_style="bold")
        for col in ("resource", "attribute", "model", "device", "fenced"):
            table.add_column(col)
        for d in drifts:
            fenced = "" if d.fenced_by is None else "drift" if d.fenced_by == 0 else f"txn {d.fenced_by}"
            table.add_row(short(d.path), d.attribute, _shown(d.logical), _shown(d.physical), fenced)
        self.console.print(table)

    def show_resolved(self, rec: Reconciler, paths: list[str]) -> None:
        if self.console is None:
            return
        table = Table(title="drift found and resolved by policy", header_style="bold")
        for col in ("resource", "attribute", "model", "device", "resolved by", "after ms"):
            table.add_column(col)
        for h in rec.history:
            if h["path"] in paths:
                ms = (h["resolved_at"] - h["first_seen"]) * 1000
                table.add_row(
                    short(h["path"]),
                    h["attribute"],
                    _shown(h["logical"]),
                    _shown(h["physical"]),
                    h["how"],
                    f"{ms:.0f}",
                )
        self.console.print(table)


def _shown(value: Any) -> str:
    return "present" if value is True else "absent" if value is False else str(value)


def _resolved(rec: Reconciler, paths: list[str]) -> bool:
    done = {h["path"] for h in rec.history if h["how"] != "vanished"}
    return all(p in done for p in paths)


def open_demo_driver(uri: str, latency: float) -> tuple[Model, Driver]:
    """The generated datacenter and a driver provisioned with it: ``sim`` (seeded, with ``latency``),
    ``libvirt`` (its test hypervisor) or any driver URI the registry resolves."""
    from tropic.drivers.registry import open_driver
    from tropic.errors import ConfigError

    model = build_datacenter(DatacenterSpec())
    aliases = {"sim": f"sim://?seed=7&latency={latency}", "sim://": f"sim://?seed=7&latency={latency}"}
    name = aliases.get(uri, "libvirt+test:///default" if uri == "libvirt" else uri)
    driver = open_driver(name)
    load = getattr(driver, "load", None)
    if load is None:
        raise ConfigError(f"driver {name} cannot be provisioned with a generated datacenter")
    load(project(model))
    return model, driver
