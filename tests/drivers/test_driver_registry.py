"""Driver URIs: ``sim://`` and ``libvirt+...`` resolve to drivers; anything else is a clear ConfigError."""

from __future__ import annotations

import sys

import pytest

from drivers.kit import HAVE_LIBVIRT, LIBVIRT_MISSING
from tropic.drivers import SimDriver
from tropic.drivers.registry import open_driver
from tropic.errors import ConfigError

needs_libvirt = pytest.mark.skipif(not HAVE_LIBVIRT, reason=LIBVIRT_MISSING)


@pytest.mark.parametrize("uri", ["sim", "sim://", "sim:", " sim:// "])
def test_sim(uri: str) -> None:
    d = open_driver(uri)
    assert isinstance(d, SimDriver) and d.seed == 0 and d.latency == 0.0


def test_sim_parameters() -> None:
    d = open_driver("sim://?seed=7&latency=0.01")
    assert isinstance(d, SimDriver) and d.seed == 7 and d.latency == 0.01


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("sim://?seed=x", "seed must be an integer"),
        ("sim://?latency=-1", "must not be negative"),
        ("sim://?speed=2", "unknown parameter(s) ['speed']"),
        ("sim://?seed=1&seed=2", "given twice"),
        ("sim://somehost", "takes no host"),
        ("libvirt://host/system", "libvirt+<libvirt URI>"),
        ("libvirt+", "unknown driver URI"),
        ("xen://host", "unknown driver URI 'xen://host'"),
        ("", "empty driver URI"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_driver(uri)
    assert words in err.value.message


@needs_libvirt
def test_libvirt_test_uri() -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    d = open_driver("libvirt+test:///default")
    try:
        assert isinstance(d, LibvirtDriver) and d.name == "libvirt"
        assert d.uri == "test:///default" and d.migration == "auto"
    finally:
        d.close()


@needs_libvirt
def test_libvirt_options_are_taken_out_of_the_libvirt_uri() -> None:
    from tropic.drivers.libvirt import LibvirtDriver

    d = open_driver(
        "libvirt+qemu+ssh://root@kvm-1/system?keyfile=/k&tropic.migration=copy&tropic.shutdown_timeout=5"
    )
    assert isinstance(d, LibvirtDriver)
    assert d.uri == "qemu+ssh://root@kvm-1/system?keyfile=%2Fk"
    assert d.migration == "copy" and d.shutdown_timeout == 5.0
    d.close()  # nothing was connected: connections open on first use


@needs_libvirt
@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("libvirt+test:///default?tropic.migration=teleport", "tropic.migration must be one of"),
        ("libvirt+test:///default?tropic.colour=red", "unknown parameter(s) ['tropic.colour']"),
        ("libvirt+test:///default?tropic.shutdown_timeout=soon", "must be a number"),
    ],
)
def test_bad_libvirt_options(uri: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_driver(uri)
    assert words in err.value.message


def test_without_libvirt_python_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from tropic.drivers import libvirt_conn

    monkeypatch.setattr(libvirt_conn, "_binding", None)
    monkeypatch.setitem(sys.modules, "libvirt", None)  # `import libvirt` raises ImportError
    with pytest.raises(ConfigError) as err:
        open_driver("libvirt+test:///default")
    assert "libvirt-python" in err.value.message and "scripts/install-libvirt.sh" in err.value.message
    assert isinstance(open_driver("sim://"), SimDriver)  # the rest of tropic does not care
