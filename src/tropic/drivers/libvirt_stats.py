"""The libvirt driver's readings: per VM its domain's CPU time (``virDomainGetInfo``, a counter the
caller turns into utilisation between two readings) and memory (balloon statistics where the guest
reports them, else its assigned memory, reserved); per host the node's CPU time counters
(``virNodeGetCPUStats``) and free memory (``virNodeGetFreeMemory``) where the hypervisor implements them.

A host whose connection fails is left out (its subjects go stale), logged; so is a domain that vanished
while it was read. Only domains tropic manages as VMs are read (not prepared configurations)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from tropic.drivers.base import Stats
from tropic.drivers.libvirt_conn import is_missing, is_unsupported
from tropic.drivers.libvirt_hosts import LibvirtHosts
from tropic.drivers.libvirt_xml import ROLE_VM
from tropic.errors import DriverError

log = logging.getLogger(__name__)

KIB_PER_MIB = 1024


class LibvirtStats(LibvirtHosts):
    """:meth:`~tropic.drivers.base.Driver.stats` on libvirt connections."""

    def stats(self, hosts: Iterable[str], now: float) -> Stats:
        out: Stats = {}
        for host in hosts:
            ep = self._hosts.get(host)
            if ep is None:
                continue  # not a libvirt host of this driver: unknown
            try:
                with self._on(ep, host, "read statistics", host) as conn:
                    out.update(self._host_stats(host, conn))
            except DriverError as e:
                log.warning("statistics of %s unreadable: %s", host, e)
        return out

    def _host_stats(self, host: str, conn: Any) -> Stats:
        lv = self._lv
        out: Stats = {}
        info = conn.getInfo()  # [model, memory MiB, CPUs, MHz, NUMA nodes, sockets, cores, threads]
        node: dict[str, float] = {"cpus": float(info[2]), "memory_mib": float(info[1]), "wall_s": time.time()}
        try:
            cpu = conn.getCPUStats(lv.VIR_NODE_CPU_STATS_ALL_CPUS)
            busy = sum(int(cpu.get(k, 0)) for k in ("kernel", "user"))
            node["cpu_busy_s"] = busy / 1e9
            node["cpu_total_s"] = (busy + sum(int(cpu.get(k, 0)) for k in ("idle", "iowait"))) / 1e9
        except lv.libvirtError as e:
            if not is_unsupported(lv, e):
                raise
        try:
            node["memory_free_mib"] = int(conn.getFreeMemory()) / (1024 * 1024)
        except lv.libvirtError as e:
            if not is_unsupported(lv, e):
                raise
        out[host] = node
        for dom in conn.listAllDomains(lv.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                if self._info(dom).role != ROLE_VM:
                    continue
                _state, _max_kib, mem_kib, vcpus, cpu_ns = dom.info()
                vm: dict[str, float] = {
                    "cpu_time_s": int(cpu_ns) / 1e9,
                    "wall_s": time.time(),
                    "vcpus": float(vcpus),
                    "memory_mib": int(mem_kib) / KIB_PER_MIB,
                    "memory": 1.0,  # assigned memory is reserved on the host ...
                }
                balloon = self._balloon(dom)
                if balloon is not None:
                    vm["memory"] = balloon  # ... unless the guest says how much of it it uses
                out[f"{host}/{dom.name()}"] = vm
            except lv.libvirtError as e:
                if not is_missing(lv, e):
                    raise
        return out

    def _balloon(self, dom: Any) -> float | None:
        try:
            m = dom.memoryStats()
        except self._lv.libvirtError:
            return None
        available, unused = m.get("available"), m.get("unused")
        if not available or unused is None:
            return None
        return max(0.0, min(1.0, (int(available) - int(unused)) / int(available)))
