"""Host lifecycle procedures: cordon a host (no new VM may be placed on it, enforced by the
``Host.cordon_respected`` constraint) and uncordon it; power a host off (refused while it holds VMs)
and on (``Host.powered``). Draining a host is a cordon followed by one
``migrate_vm`` transaction per VM (see ``tropic host drain``)."""

from __future__ import annotations

from tropic.model import Host, View
from tropic.procedures.base import ProcedureFn


def cordon_host(view: View, *, host: str) -> None:
    """Refuse new VMs on ``host``; the VMs already there may stay or leave (a VM that leaves may not come
    back while the host stays cordoned)."""
    view.get(host, Host).cordon()


def uncordon_host(view: View, *, host: str) -> None:
    """Accept new VMs on ``host`` again."""
    view.get(host, Host).uncordon()


def power_off_host(view: View, *, host: str) -> None:
    """Power ``host`` off; refused while it holds VMs or VM configurations (drain it first)."""
    view.get(host, Host).power_off()


def power_on_host(view: View, *, host: str) -> None:
    """Power ``host`` on again."""
    view.get(host, Host).power_on()


HOST_PROCEDURES: tuple[ProcedureFn, ...] = (cordon_host, uncordon_host, power_off_host, power_on_host)
