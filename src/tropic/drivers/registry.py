"""Driver URIs: one place resolves a URI to a driver backend.

* ``sim://`` (or ``sim``), with optional ``?seed=N&latency=SECONDS``: the in-repo simulated datacenter;
  ``sim:///path/to/devices.db`` keeps its devices in that file;
* ``libvirt+<libvirt URI>``: the libvirt driver, e.g. ``libvirt+test:///default`` (a private built-in test
  hypervisor per host, no daemon needed) or ``libvirt+qemu+ssh://root@kvm-1/system``. Query parameters
  named ``tropic.*`` are the driver's own and are not passed to libvirt: ``tropic.migration`` (auto, live,
  copy), ``tropic.shutdown_timeout`` (seconds), ``tropic.network`` (libvirt URI of the routers' networks).

Backends are imported only when asked for, so tropic works without libvirt-python installed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tropic.drivers.base import Driver
from tropic.errors import ConfigError

KNOWN = "sim://[PATH][?seed=N&latency=SECONDS], libvirt+<libvirt URI> (e.g. libvirt+test:///default)"


def open_driver(uri: str) -> Driver:
    """The driver a URI names; :class:`~tropic.errors.ConfigError` for an unknown or malformed URI."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"empty driver URI; expected one of: {KNOWN}")
    uri = uri.strip()
    scheme = uri.split(":", 1)[0] if ":" in uri else uri
    if scheme == "sim":
        return _sim(uri)
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


def _sim(uri: str) -> Driver:
    from tropic.drivers.sim import SimDriver

    if uri == "sim":
        return SimDriver()
    parts = urlsplit(uri)
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
    state = parts.path if parts.path not in ("", "/") else None
    return SimDriver(seed=seed, latency=latency, state_file=state)


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
