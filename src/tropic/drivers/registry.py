"""Driver URIs: the one place that resolves a URI to a driver backend.

* ``sim://`` (or ``sim``), with optional ``?seed=N&latency=SECONDS``: the in-repo simulated datacenter;
  ``sim:///path/to/devices.db`` keeps its devices in that file. An embedded store passes its own devices
  file as ``default_state`` (``store.db.devices``); distributed mode asks for ``shared`` devices, which
  several processes act on at once through that file (:mod:`tropic.drivers.sim_shared`);
* ``libvirt+<libvirt URI>``: the libvirt driver, e.g. ``libvirt+test:///default`` (a private built-in test
  hypervisor per host, no daemon needed) or ``libvirt+qemu+ssh://root@kvm-1/system``. Query parameters
  named ``tropic.*`` are the driver's own and are not passed to libvirt: ``tropic.migration`` (auto, live,
  copy), ``tropic.shutdown_timeout`` (seconds), ``tropic.network`` (libvirt URI of the routers' networks).

Backends are imported only when asked for, so tropic works without libvirt-python installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tropic.drivers.base import Driver
from tropic.errors import ConfigError
from tropic.owner import Holder

KNOWN = "sim://[PATH][?seed=N&latency=SECONDS], libvirt+<libvirt URI> (e.g. libvirt+test:///default)"


def open_driver(
    uri: str,
    *,
    default_state: str | os.PathLike[str] | None = None,
    shared: bool = False,
    holder: Holder | None = None,
) -> Driver:
    """The driver a URI names; :class:`~tropic.errors.ConfigError` for an unknown or malformed URI.

    ``default_state``: the devices file of a ``sim://`` URI that names none (an embedded store's own).
    ``shared``: the devices must be reachable from several processes (distributed mode): a ``sim`` URI must
    name its file, and the sim opens it for concurrent use. ``holder``: who this process is, for a sim file
    it owns (see :mod:`tropic.owner`)."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"empty driver URI; expected one of: {KNOWN}")
    uri = uri.strip()
    scheme = uri.split(":", 1)[0] if ":" in uri else uri
    if scheme == "sim":
        return _sim(parse_sim_uri(uri), default_state=default_state, shared=shared, holder=holder)
    if scheme.startswith("libvirt+") and len(scheme) > len("libvirt+"):
        return _libvirt(uri)
    if scheme == "libvirt":
        raise ConfigError(
            f"driver URI {uri!r} names no libvirt connection: write libvirt+<libvirt URI>, "
            "e.g. libvirt+test:///default or libvirt+qemu+ssh://host/system"
        )
    raise ConfigError(f"unknown driver URI {uri!r}; known: {KNOWN}")


def _params(uri: str, query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as e:
        raise ConfigError(f"driver URI {uri!r}: malformed query: {e}") from e
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"driver URI {uri!r}: parameter {key!r} given twice")
        out[key] = value
    return out


def _number(uri: str, key: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        n = kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"driver URI {uri!r}: {key} must be {what}, not {value!r}") from None
    if n < 0:
        raise ConfigError(f"driver URI {uri!r}: {key} must not be negative")
    return n


@dataclass(frozen=True, slots=True)
class SimURI:
    """A parsed ``sim`` URI: seed and latency of the simulated devices, and their file if it names one."""

    uri: str
    seed: int = 0
    latency: float = 0.0
    state: Path | None = None


def parse_sim_uri(uri: str) -> SimURI:
    """``sim``, ``sim:``, ``sim://`` or ``sim:///path``, with optional ``?seed=N&latency=SECONDS``."""
    if uri in ("sim", "sim:"):
        return SimURI(uri)
    parts = urlsplit(uri)
    if parts.scheme != "sim":
        raise ConfigError(f"not a sim driver URI: {uri!r}")
    if parts.netloc or parts.fragment:
        raise ConfigError(f"driver URI {uri!r}: the sim driver takes no host (write sim:// or sim:///path)")
    params = _params(uri, parts.query)
    unknown = sorted(set(params) - {"seed", "latency"})
    if unknown:
        raise ConfigError(
            f"driver URI {uri!r}: unknown parameter(s) {unknown}; the sim driver takes seed, latency"
        )
    seed = int(_number(uri, "seed", params.get("seed", "0"), int))
    latency = float(_number(uri, "latency", params.get("latency", "0"), float))
    state = Path(parts.path) if parts.path not in ("", "/") else None
    return SimURI(uri, seed, latency, state)


def _sim(
    spec: SimURI,
    *,
    default_state: str | os.PathLike[str] | None = None,
    shared: bool = False,
    holder: Holder | None = None,
) -> Driver:
    state = spec.state or (Path(default_state) if default_state is not None else None)
    if shared:
        from tropic.drivers.sim_shared import SharedSimDriver

        if spec.state is None:
            raise ConfigError(
                f"sim driver URI {spec.uri!r} names no devices file; controllers and workers share one: "
                "sim:///path/to/devices.db"
            )
        return SharedSimDriver(spec.state, seed=spec.seed, latency=spec.latency)
    from tropic.drivers.sim import SimDriver

    return SimDriver(seed=spec.seed, latency=spec.latency, state_file=state, holder=holder)


def _libvirt(uri: str) -> Driver:
    from tropic.drivers.libvirt import MIGRATION_MODES, LibvirtDriver

    native = uri[len("libvirt+") :]
    parts = urlsplit(native)
    params = _params(uri, parts.query)
    ours = {k[len("tropic.") :]: v for k, v in params.items() if k.startswith("tropic.")}
    rest = [(k, v) for k, v in params.items() if not k.startswith("tropic.")]
    unknown = sorted(set(ours) - {"migration", "shutdown_timeout", "network"})
    if unknown:
        raise ConfigError(
            f"driver URI {uri!r}: unknown parameter(s) {['tropic.' + k for k in unknown]}; "
            "known: tropic.migration, tropic.shutdown_timeout, tropic.network"
        )
    migration = ours.get("migration", "auto")
    if migration not in MIGRATION_MODES:
        raise ConfigError(f"driver URI {uri!r}: tropic.migration must be one of {MIGRATION_MODES}")
    timeout = float(_number(uri, "tropic.shutdown_timeout", ours.get("shutdown_timeout", "60"), float))
    libvirt_uri = urlunsplit(parts._replace(query=urlencode(rest))) if ours else native
    return LibvirtDriver(
        libvirt_uri, network_uri=ours.get("network", ""), migration=migration, shutdown_timeout=timeout
    )
