"""A long-running random workload, on an embedded store or through a running server.

**On a store** (:func:`run_workload`) this process owns the store for the run, and the run is resumable
after SIGKILL at any instant: request ``i`` is generated from ``(seed, i)`` and recorded in its
transaction's ``submitter`` field, so a restarted run knows exactly which requests reached the store and
continues with the next one: nothing is lost and nothing is submitted twice.

**Through a server** (:func:`run_remote_workload`), for a store a server owns: the requests go through
its API and the run waits until each is final. Each submission carries one idempotency key, so a retried
HTTP call never makes a second transaction; but the server records the token's name as submitter, so an
interrupted run is not resumed: run again, it submits a new workload. The devices' latency and faults are
the server's own.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tropic.drivers.sim import Fault, SimDriver
from tropic.errors import TropicError
from tropic.model import VM, Host, Model
from tropic.model.generate import DatacenterSpec, build_datacenter
from tropic.owner import Holder
from tropic.service.embedded import open_embedded
from tropic.txn import FINAL, Transaction

if TYPE_CHECKING:
    from tropic.api.client import Client

PREFIX = "workload/"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    txns: int
    seed: int = 0
    fail_rate: float = 0.03  # probability that a forward device step fails
    undo_fail_rate: float = 0.0  # probability that an undo step fails (ends FAILED, fenced)
    window: int = 32  # at most this many transactions not final at once
    latency: float = 0.0  # simulated device seconds per action


def datacenter() -> Any:
    return build_datacenter(DatacenterSpec(regions=("us-east", "eu-west"), hosts_per_region=6))


def faults_for(spec: WorkloadSpec) -> list[Fault]:
    out = []
    if spec.fail_rate > 0:
        out.append(Fault(probability=spec.fail_rate, message="injected device fault"))
    if spec.undo_fail_rate > 0:
        out.append(Fault(probability=spec.undo_fail_rate, undo=True, message="injected undo fault"))
    return out


def request_index(t: Transaction) -> int | None:
    if not t.submitter.startswith(PREFIX):
        return None
    try:
        return int(t.submitter.rsplit("/", 1)[1])
    except ValueError:
        return None


Fleet = tuple[list[str], list[str]]  # host paths, VM paths


def fleet(model: Model) -> Fleet:
    """The hosts and VMs a request picks from, in path order."""
    nodes = model.nodes
    return (
        sorted(p for p, n in nodes.items() if n.kind == Host.kind),
        sorted(p for p, n in nodes.items() if n.kind == VM.kind),
    )


def make_request(current: Fleet, seed: int, i: int, *, run: str = "") -> tuple[str, dict[str, Any]] | None:
    """Request ``i``: a spawn, stop, start, migrate, resize, destroy or a constraint-violating spawn.
    A spawned VM is named ``w<i>`` (``w<i>-<run>`` when ``run`` tells runs on one model apart)."""
    rng = random.Random(f"{seed}:{i}")
    hosts, vms = current
    kind = rng.choices(
        ["spawn", "stop", "start", "migrate", "destroy", "resize", "huge"], [40, 10, 10, 15, 15, 5, 5]
    )[0]
    if kind in ("spawn", "huge") or not vms:
        host = rng.choice(hosts)
        region = host.split("/")[2]
        memory = 10**6 if kind == "huge" else rng.choice([1024, 2048, 4096])
        return "spawn_vm", {
            "host": host,
            "name": f"w{i}-{run}" if run else f"w{i}",
            "image": f"/storage/{region}/san-1/img-ubuntu",
            "vcpus": rng.choice([1, 2]),
            "memory_mib": memory,
        }
    vm = rng.choice(vms)
    if kind == "migrate":
        region = vm.split("/")[2]
        same = [h for h in hosts if h.split("/")[2] == region]
        return "migrate_vm", {"vm": vm, "dest": rng.choice(same)}
    if kind == "resize":
        return "resize_vm", {
            "vm": vm,
            "vcpus": rng.choice([1, 2, 4]),
            "memory_mib": rng.choice([1024, 2048, 8192]),
        }
    return f"{kind}_vm", {"vm": vm}


def run_workload(store: str, spec: WorkloadSpec, progress: Progress | None = None) -> dict[str, Any]:
    """Submit requests ``next..spec.txns-1`` (``next`` read from the store) and run them all to the end.
    This process owns the store meanwhile: :class:`~tropic.errors.StoreInUse` if another one does."""
    holder = Holder.current(command="tropic run-workload")
    emb = open_embedded(store, initial=datacenter, faults=faults_for(spec), holder=holder)
    if isinstance(emb.driver, SimDriver):
        emb.driver.latency = spec.latency
    c = emb.controller
    done_before = max((request_index(t) or -1 for t in c.transactions()), default=-1)
    c.start()
    try:
        outstanding: list[Transaction] = c.live()
        i = done_before + 1
        while i < spec.txns:
            outstanding = [t for t in outstanding if t.state not in FINAL]
            if len(outstanding) >= spec.window:
                c.wait(outstanding[0], 120)
                continue
            req = make_request(c.call(lambda: fleet(c.model)), spec.seed, i)
            if req is not None:
                outstanding.append(c.submit(req[0], req[1], submitter=f"{PREFIX}{spec.seed}/{i}"))
            i += 1
            if progress is not None:
                progress(i, spec.txns)
        c.drain(600)
    finally:
        emb.close()
    return {"submitted_now": max(0, spec.txns - done_before - 1), "resumed_from": done_before + 1}


def run_remote_workload(
    client: Client, spec: WorkloadSpec, progress: Progress | None = None, *, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Submit requests ``0..spec.txns-1`` through a server's API, at most ``spec.window`` not final at
    once, and wait until all are final (see the module docstring for what is guaranteed)."""
    from tropic.service.remote import fetch_model  # httpx loads only when a server is used

    run = secrets.token_hex(3)  # VMs of two runs on one server never share a name
    outstanding: list[int] = []
    by_state: dict[str, int] = {}

    def settle(txn_id: int) -> None:
        try:
            state = str(client.wait(txn_id, timeout=timeout_s)["state"])
        except TimeoutError:
            raise TropicError(
                f"transaction {txn_id} is not final after {timeout_s:g} s; the server goes on with it"
            ) from None
        by_state[state] = by_state.get(state, 0) + 1

    for i in range(spec.txns):
        while len(outstanding) >= spec.window:
            settle(outstanding.pop(0))
        req = make_request(fleet(fetch_model(client, "/compute")), spec.seed, i, run=run)
        if req is not None:
            outstanding.append(int(client.submit(req[0], req[1])["id"]))
        if progress is not None:
            progress(i + 1, spec.txns)
    for txn_id in outstanding:
        settle(txn_id)
    return {
        "submitted_now": spec.txns,
        "resumed_from": 0,
        "by_state": by_state,
        "url": client.url,
        "run": run,
    }
