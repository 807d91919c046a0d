"""Malformed Azure trace files give a ConfigError naming the file and line, never a traceback."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tropic.errors import ConfigError, InvalidArguments, TropicError, UserError
from tropic.trace import iter_azure_vms, load_azure_trace

FLAVORS = "1,0.75 a\n2,3.5 g\n"
BINS = "0 0\n300 1\n600 2\n900 2\n1200 3\n"  # bins [0,300) [300,600) [600,1200) [1200,1500)
ARRIVALS = "0 a,a,|,g,|\n300 g,|\n600 a,|,g,g,|\n"
# The trace ends at 900: a VM of t=0 still running has run 900 s (bin 2), t=300 600 s (bin 2), t=600 300 s.
LIFETIMES = "0 U0,U1,|,C2,|\n300 U0,|\n600 C1,|,U0,C1,|\n"


def make_trace(root: Path, **files: str) -> Path:
    texts = {
        "flavors.txt": FLAVORS,
        "lifetime-bins.txt": BINS,
        "arrivals.txt": ARRIVALS,
        "lifetimes.txt": LIFETIMES,
    }
    for key, text in files.items():
        texts[key.replace("_", "-").replace("-txt", ".txt")] = text
    root.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (root / name).write_text(text)
    return root


def error_of(root: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_azure_trace(root)
    return info.value


def test_the_valid_trace_loads(tmp_path: Path) -> None:
    trace = load_azure_trace(make_trace(tmp_path))
    assert [(vm.flavor, vm.batch, vm.lifetime_bin, vm.censored) for vm in trace.vms] == [
        ("a", 0, 0, False),
        ("a", 0, 1, False),
        ("g", 1, 2, True),
        ("g", 2, 0, False),
        ("a", 3, 1, True),
        ("g", 4, 0, False),
        ("g", 4, 1, True),
    ]
    assert trace.end_s == 900
    assert [vm.lifetime_s for vm in trace.vms] == [150, 450, 900, 150, 300, 150, 300]
    # An uncensored VM's lifetime is the midpoint of its bin, clipped to the trace end.
    clipped = load_azure_trace(
        make_trace(
            tmp_path / "clip",
            arrivals_txt="0 a,|\n300 a,|\n600 a,|\n",
            lifetimes_txt="0 U2,|\n300 U1,|\n600 U0,|\n",
        )
    )
    assert [vm.lifetime_s for vm in clipped.vms] == [(600 + 900) / 2, (300 + 600) / 2, (0 + 300) / 2]
    assert [vm.end_s for vm in clipped.vms] == [750, 750, 750]


def test_empty_bins_trailing_commas_and_unclosed_batches(tmp_path: Path) -> None:
    root = make_trace(
        tmp_path, arrivals_txt="0 a,|,|,g\n\n300\n600 a,\n", lifetimes_txt="0 U0,|,|,U0\n\n300\n600 U0,\n"
    )
    trace = load_azure_trace(root)
    assert [(vm.time_s, vm.flavor, vm.batch) for vm in trace.vms] == [(0, "a", 0), (0, "g", 1), (600, "a", 2)]
    assert trace.time_bins == 3


CASES: list[tuple[dict[str, str], str, int, str]] = [
    # (files replaced, file named, line named, message fragment)
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 U0,U0,|\n600 C1,|,U0,C1,|\n"}, "lifetimes.txt", 2, "3 tokens"),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 U0,|\n600 C1,|,U0,|\n"}, "lifetimes.txt", 3, "4 tokens"),
    ({"arrivals_txt": "0 a,a,|,g,|\n300 z,|\n600 a,|,g,g,|\n"}, "arrivals.txt", 2, "unknown flavor 'z'"),
    ({"arrivals_txt": "0 a,a,|,g,|\n3o0 g,|\n600 a,|,g,g,|\n"}, "arrivals.txt", 2, "bad time '3o0'"),
    ({"arrivals_txt": "0 a,a,|,g,|\n300 g,|\n-600 a,|,g,g,|\n"}, "arrivals.txt", 3, "bad time '-600'"),
    ({"arrivals_txt": "0 a,a,|,g,|\n300 g,|\n300 a,|,g,g,|\n"}, "arrivals.txt", 3, "does not increase"),
    ({"arrivals_txt": "0 a,a,|,g,|\n300 g,,|\n600 a,|,g,g,|\n"}, "arrivals.txt", 2, "token 2 is empty"),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 Ux,|\n600 C1,|,U0,C1,|\n"}, "lifetimes.txt", 2, "got 'Ux'"),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 X0,|\n600 C1,|,U0,C1,|\n"}, "lifetimes.txt", 2, "got 'X0'"),
    (
        {"lifetimes_txt": "0 U0,U1,|,C2,|\n300 U9,|\n600 C1,|,U0,C1,|\n"},
        "lifetimes.txt",
        2,
        "unknown lifetime bin 9",
    ),
    (
        {"lifetimes_txt": "0 U0,U1,|,C2,|\n300 U0,|\n600 C2,|,U0,C1,|\n"},
        "lifetimes.txt",
        3,
        "censored VM ran 300 s",
    ),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 U2,|\n600 C1,|,U0,C1,|\n"}, "lifetimes.txt", 2, "ended before"),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n300 |,|\n600 C1,|,U0,C1,|\n"}, "lifetimes.txt", 2, "token 1 is '|'"),
    (
        {"lifetimes_txt": "0 U0,U1,C2,|,|\n300 U0,|\n600 C1,|,U0,C1,|\n"},
        "lifetimes.txt",
        1,
        "token 3 is 'C2'",
    ),
    (
        {"lifetimes_txt": "0 U0,U1,|,C2,|\n301 U0,|\n600 C1,|,U0,C1,|\n"},
        "lifetimes.txt",
        2,
        "time 301 differs",
    ),
    ({"lifetimes_txt": "0 U0,U1,|,C2,|\n\n300 U0,|\n"}, "lifetimes.txt", 4, "missing the line matching"),
    ({"lifetimes_txt": LIFETIMES + "900 U0,|\n"}, "lifetimes.txt", 4, "extra line"),
    ({"arrivals_txt": "\n\n"}, "arrivals.txt", 0, "no time bins"),
    ({"flavors_txt": "1,0.75 a\n2,x g\n"}, "flavors.txt", 2, "bad size '2,x'"),
    ({"flavors_txt": "1,0.75 a\nzero,3.5 g\n"}, "flavors.txt", 2, "bad vCPU count 'zero'"),
    ({"flavors_txt": "1,0.75 a\n2,3.5 g h\n"}, "flavors.txt", 2, "expected '<vcpus>,<memory_gib> <letter>'"),
    ({"flavors_txt": "1,0.75 a\n2,3.5 a\n"}, "flavors.txt", 2, "defined twice"),
    ({"flavors_txt": "1,0.75 a\n2,-3.5 g\n"}, "flavors.txt", 2, "bad size"),
    ({"flavors_txt": "1,0.75 a\n2,3.5 |\n"}, "flavors.txt", 2, "invalid flavor name"),
    ({"lifetime_bins_txt": "0 0\n300 one\n"}, "lifetime-bins.txt", 2, "bad bin 'one'"),
    ({"lifetime_bins_txt": "0 0\n300 1\n300 2\n"}, "lifetime-bins.txt", 3, "does not increase"),
    ({"lifetime_bins_txt": "0 0\n300 2\n"}, "lifetime-bins.txt", 2, "bins must go up one by one"),
    ({"lifetime_bins_txt": "0 1\n300 2\n"}, "lifetime-bins.txt", 1, "first row must be in bin 0"),
    ({"lifetime_bins_txt": "0 0\n"}, "lifetime-bins.txt", 0, "at least two rows"),
]


@pytest.mark.parametrize(("files", "name", "line", "fragment"), CASES)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, files: dict[str, str], name: str, line: int, fragment: str
) -> None:
    error = error_of(make_trace(tmp_path, **files))
    assert isinstance(error, UserError) and isinstance(error, TropicError)
    path = str(tmp_path / name)
    assert error.path == path
    prefix = f"{path}:{line}: " if line else f"{path}: "
    assert error.message.startswith(prefix), error.message
    assert fragment in error.message, error.message
    assert error.to_dict()["code"] == "config_error"


@pytest.mark.parametrize("name", ["flavors.txt", "lifetime-bins.txt", "arrivals.txt", "lifetimes.txt"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    root = make_trace(tmp_path)
    (root / name).unlink()
    error = error_of(root)
    assert error.message == f"{root / name}: trace file not found"


def test_missing_directory(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nowhere")
    assert error.message == f"{tmp_path / 'nowhere'}: trace directory not found"


def test_not_text(tmp_path: Path) -> None:
    root = make_trace(tmp_path)
    (root / "arrivals.txt").write_bytes(b"0 a,|\n300 \xff\xfe,|\n")
    assert re.fullmatch(rf"{re.escape(str(root / 'arrivals.txt'))}:2: not UTF-8 text", error_of(root).message)


def test_stream_checks_files_eagerly_and_tokens_lazily(tmp_path: Path) -> None:
    root = make_trace(tmp_path, arrivals_txt="0 a,a,|,g,|\n300 z,|\n600 a,|,g,g,|\n")
    vms = iter_azure_vms(root)  # the header files and line counts are fine, so this does not raise
    assert [vm.flavor for vm in itertools.islice(vms, 3)] == ["a", "a", "g"]
    with pytest.raises(ConfigError, match=re.escape("arrivals.txt:2: token 1: unknown flavor 'z'")):
        next(vms)
    (root / "flavors.txt").unlink()
    with pytest.raises(ConfigError, match="not found"):
        iter_azure_vms(root)


def test_truncation_stops_before_bad_tokens(tmp_path: Path) -> None:
    root = make_trace(tmp_path, arrivals_txt="0 a,a,|,g,|\n300 z,|\n600 a,|,g,g,|\n")
    assert len(load_azure_trace(root, max_vms=3)) == 3
    assert load_azure_trace(root, max_bins=1).time_bins == 1


@pytest.mark.parametrize("kwargs", [{"max_bins": -1}, {"max_vms": -2}, {"bin_s": 0}])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidArguments):
        load_azure_trace(make_trace(tmp_path), **kwargs)
