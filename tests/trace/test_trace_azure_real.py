"""The full real Azure trace (410,276 VMs), read from ../shared/data when it is there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tropic.trace import AzureTrace, EventKind, load_azure_trace

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "azure-v1"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not (REAL / "arrivals.txt").is_file(),
        reason=f"real Azure trace not found at {REAL} (optional reference data; the sample covers the rest)",
    ),
]


@pytest.fixture(scope="module")
def real() -> AzureTrace:
    return load_azure_trace(REAL)  # how fast: benchmarks/trace_load.py


def test_count_and_time_range(real: AzureTrace) -> None:
    assert len(real) == 410_276
    assert real.time_bins == 1638
    assert real.start_s == 2_100_000
    assert real.vms[0].time_s == 2_100_000
    assert real.vms[-1].time_s == 2_591_100
    assert real.end_s == 2_591_400
    assert max(Counter(vm.time_s for vm in real.vms).values()) == 1806


def test_contents(real: AzureTrace) -> None:
    assert len(real.flavors) == 16
    assert (real.flavors["d"].vcpus, real.flavors["d"].memory_mib) == (16, 112 * 1024)
    assert len(real.lifetime_bins) == 46
    assert real.vms[-1].batch + 1 == 82_946
    censored = [vm for vm in real.vms if vm.censored]
    assert len(censored) == 23_311
    assert all(vm.end_s == real.end_s for vm in censored)
    assert max(vm.end_s for vm in real.vms if not vm.censored) <= real.end_s
    first = real.vms[0]
    assert (first.flavor, first.vcpus, first.memory_mib, first.lifetime_bin, first.lifetime_s) == (
        "m",
        8,
        14 * 1024,
        3,
        1050.0,
    )


def test_events(real: AzureTrace) -> None:
    kinds = Counter(event.kind for event in real.events())
    assert kinds == {EventKind.ARRIVAL: 410_276, EventKind.DEPARTURE: 410_276 - 23_311}


def test_truncated(real: AzureTrace) -> None:
    part = load_azure_trace(REAL, max_bins=12)
    assert part.time_bins == 12 and part.end_s == real.end_s
    assert part.vms == real.vms[: len(part.vms)]
    assert all(vm.time_s < 2_100_000 + 12 * 300 for vm in part.vms)
    assert load_azure_trace(REAL, max_vms=1000).vms == real.vms[:1000]


def test_round_trip_token_for_token(real: AzureTrace) -> None:
    """Writing the VMs back in the trace layout gives the two files again, byte for byte."""
    arrivals: dict[int, list[str]] = {}
    lifetimes: dict[int, list[str]] = {}
    previous_batch = -1
    for vm in real.vms:
        a_tokens = arrivals.setdefault(vm.time_s, [])
        l_tokens = lifetimes.setdefault(vm.time_s, [])
        if vm.batch != previous_batch and a_tokens:
            a_tokens.append("|")
            l_tokens.append("|")
        previous_batch = vm.batch
        a_tokens.append(vm.flavor)
        l_tokens.append(f"{'C' if vm.censored else 'U'}{vm.lifetime_bin}")
    for name, lines in (("arrivals.txt", arrivals), ("lifetimes.txt", lifetimes)):
        text = "".join(f"{t} {','.join(tokens)},|\n" for t, tokens in lines.items())
        assert text == (REAL / name).read_text(), name
