"""The packaged synthetic sample: it loads, round-trips token for token, and is what the script generates."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest

from tropic.trace import (
    ARRIVALS_FILE,
    LIFETIMES_FILE,
    AzureTrace,
    EventKind,
    VmArrival,
    iter_azure_vms,
    load_azure_trace,
    read_flavors,
    read_lifetime_bins,
    sample_path,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample() -> AzureTrace:
    return load_azure_trace(sample_path())


def render_lines(vms: list[VmArrival]) -> tuple[str, str]:
    """Write VMs back in the trace layout (every batch closed by '|'), as arrivals and lifetimes text."""
    arrivals: list[str] = []
    lifetimes: list[str] = []
    for time_s, in_bin in itertools.groupby(vms, key=lambda vm: vm.time_s):
        a_tokens: list[str] = []
        l_tokens: list[str] = []
        for _, batch in itertools.groupby(in_bin, key=lambda vm: vm.batch):
            for vm in batch:
                a_tokens.append(vm.flavor)
                l_tokens.append(f"{'C' if vm.censored else 'U'}{vm.lifetime_bin}")
            a_tokens.append("|")
            l_tokens.append("|")
        arrivals.append(f"{time_s} {','.join(a_tokens)}\n")
        lifetimes.append(f"{time_s} {','.join(l_tokens)}\n")
    return "".join(arrivals), "".join(lifetimes)


def test_sample_path_is_a_packaged_trace_directory() -> None:
    path = sample_path()
    for name in ("arrivals.txt", "flavors.txt", "lifetimes.txt", "lifetime-bins.txt"):
        assert (path / name).is_file()
    assert sum((path / name).stat().st_size for name in (ARRIVALS_FILE, LIFETIMES_FILE)) < 16_000


def test_sample_loads(sample: AzureTrace) -> None:
    assert 200 <= len(sample) <= 600
    assert sample.start_s == 0
    assert sample.time_bins == 24
    assert sample.end_s == 24 * 300
    assert [vm.id for vm in sample.vms] == list(range(len(sample)))
    assert {vm.flavor for vm in sample.vms} <= set(sample.flavors)
    assert any(vm.censored for vm in sample.vms) and not all(vm.censored for vm in sample.vms)
    times = [vm.time_s for vm in sample.vms]
    assert times == sorted(times)
    batches = [vm.batch for vm in sample.vms]
    assert batches == sorted(batches) and batches[0] == 0
    assert len(set(batches)) == batches[-1] + 1


def test_flavor_sizes(sample: AzureTrace) -> None:
    flavors = read_flavors(sample_path() / "flavors.txt")
    assert flavors == dict(sample.flavors)
    assert (flavors["a"].vcpus, flavors["a"].memory_mib) == (1, 768)
    assert (flavors["g"].vcpus, flavors["g"].memory_mib) == (2, 3584)
    assert (flavors["d"].vcpus, flavors["d"].memory_mib) == (16, 112 * 1024)
    for vm in sample.vms:
        assert (vm.vcpus, vm.memory_mib) == (flavors[vm.flavor].vcpus, flavors[vm.flavor].memory_mib)


def test_lifetime_bin_bounds() -> None:
    bins = read_lifetime_bins(sample_path() / "lifetime-bins.txt")
    assert (bins[0].lower_s, bins[0].upper_s, bins[0].midpoint_s) == (0, 300, 150)
    assert (bins[12].lower_s, bins[12].upper_s) == (3600, 3900)
    assert (bins[13].lower_s, bins[13].upper_s) == (3900, 7500)
    assert all(a.upper_s == b.lower_s for a, b in itertools.pairwise(bins.bins))
    assert bins.bin_of(0) == 0 and bins.bin_of(299) == 0 and bins.bin_of(300) == 1
    assert bins.bin_of(7499) == 13 and bins.bin_of(bins[len(bins) - 1].upper_s) is None


def test_lifetimes_agree_with_their_bins(sample: AzureTrace) -> None:
    bins = sample.lifetime_bins
    for vm in sample.vms:
        assert vm.end_s == vm.time_s + vm.lifetime_s
        if vm.censored:
            assert vm.end_s == sample.end_s
            assert bins.bin_of(vm.lifetime_s) == vm.lifetime_bin
        else:
            assert vm.end_s <= sample.end_s
            assert bins[vm.lifetime_bin].lower_s < vm.lifetime_s < bins[vm.lifetime_bin].upper_s


def test_sample_round_trips_token_for_token(sample: AzureTrace) -> None:
    arrivals, lifetimes = render_lines(list(sample.vms))
    assert arrivals == (sample_path() / ARRIVALS_FILE).read_text()
    assert lifetimes == (sample_path() / LIFETIMES_FILE).read_text()


def test_stream_equals_load(sample: AzureTrace) -> None:
    assert tuple(iter_azure_vms(sample_path())) == sample.vms


def test_truncate_by_bins(sample: AzureTrace) -> None:
    part = load_azure_trace(sample_path(), max_bins=3)
    assert part.time_bins == 3
    assert part.end_s == sample.end_s  # censoring still refers to the end of the whole trace
    assert part.vms == tuple(vm for vm in sample.vms if vm.time_s < 900)
    assert load_azure_trace(sample_path(), max_bins=1000).vms == sample.vms


@pytest.mark.parametrize("n", [0, 1, 10, 57])
def test_truncate_by_vms(sample: AzureTrace, n: int) -> None:
    part = load_azure_trace(sample_path(), max_vms=n)
    assert part.vms == sample.vms[:n]
    assert part.time_bins == len({vm.time_s for vm in part.vms})
    assert list(iter_azure_vms(sample_path(), max_vms=n, max_bins=2)) == [
        vm for vm in sample.vms[:n] if vm.time_s < 600
    ]


def test_sample_events(sample: AzureTrace) -> None:
    events = list(sample.events())
    uncensored = sum(not vm.censored for vm in sample.vms)
    assert len(events) == len(sample) + uncensored
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)
    assert sum(e.kind is EventKind.DEPARTURE for e in events) == uncensored
    assert len(list(sample.events(censored_departures=True))) == 2 * len(sample)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_trace_sample", REPO / "scripts" / "make_trace_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_sample_is_what_the_script_generates(tmp_path: Path) -> None:
    script = load_script()
    script.write(tmp_path)
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (sample_path() / path.name).read_bytes(), path.name
    other = tmp_path / "other-seed"
    script.write(other, seed=1, time_bins=5)
    assert load_azure_trace(other).time_bins == 5
