"""Reader of the Azure VM arrival trace (Azure Public Dataset V1, as processed by trace_generation_rnn).

A trace is a directory of four text files:

- ``flavors.txt``: ``<vcpus>,<memory_gib> <letter>``, one VM size per line;
- ``arrivals.txt``: ``<t_seconds> <flavor>,<flavor>,|,<flavor>,|,...``, one line per time bin of 300 s;
  ``|`` closes a tenant batch (the VMs one tenant requested in that bin);
- ``lifetimes.txt``: the same layout, token for token, each flavor replaced by ``U<k>`` (the VM ended before
  the trace end) or ``C<k>`` (censored: still running at the trace end, having run for a duration in bin k);
- ``lifetime-bins.txt``: ``<duration_seconds> <bin>`` rows; row ``d k`` puts ``[d, next row's d)`` in bin k.

The trace ends one time bin after its last line. Malformed files raise :class:`~tropic.errors.ConfigError`
naming the file and line.
"""

from __future__ import annotations

import importlib.resources
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from tropic.errors import ConfigError, InvalidArguments
from tropic.trace.base import Flavor, LifetimeBin, LifetimeBins, TraceEvent, VmArrival
from tropic.trace.events import iter_events

ARRIVALS_FILE = "arrivals.txt"
FLAVORS_FILE = "flavors.txt"
LIFETIMES_FILE = "lifetimes.txt"
LIFETIME_BINS_FILE = "lifetime-bins.txt"
DEFAULT_BIN_S = 300
"""Width of one arrival time bin, in seconds."""

BATCH_SEPARATOR = "|"

# A numbered, non-blank line of a file: (line number, stripped text).
_Line = tuple[int, str]
# What a lifetime token means for a VM arriving at a given time: (bin, lifetime_s, censored, end_s).
_Life = tuple[int, float, bool, float]


@dataclass(frozen=True)
class AzureTrace:
    """A loaded trace: its VMs in arrival order plus what is needed to interpret them.

    ``start_s`` is the first time bin, ``end_s`` the end of the whole trace (censored VMs end there, even
    when the trace was truncated with ``max_bins``/``max_vms``); ``time_bins`` counts the time bins (lines)
    whose VMs were loaded, in full or in part.
    """

    directory: Path
    flavors: Mapping[str, Flavor]
    lifetime_bins: LifetimeBins
    vms: tuple[VmArrival, ...]
    start_s: int
    end_s: int
    time_bins: int
    bin_s: int = DEFAULT_BIN_S

    def __len__(self) -> int:
        return len(self.vms)

    def events(self, *, censored_departures: bool = False) -> Iterator[TraceEvent]:
        """Arrival and departure events in time order (see :func:`tropic.trace.iter_events`)."""
        return iter_events(self.vms, censored_departures=censored_departures)


def sample_path() -> Path:
    """The directory of the small synthetic trace shipped with tropic (same four-file format)."""
    res = importlib.resources.files("tropic") / "data" / "azure-sample"
    if not isinstance(res, Path):
        raise ConfigError(f"the packaged trace sample is not on the file system ({res})", path=str(res))
    return res


def read_flavors(path: str | os.PathLike[str]) -> dict[str, Flavor]:
    """Parse a ``flavors.txt`` file into ``{letter: Flavor}``."""
    file = Path(path)
    flavors: dict[str, Flavor] = {}
    for lineno, line in _read_lines(file):
        fields = line.split()
        if len(fields) != 2:
            raise _error(file, lineno, f"expected '<vcpus>,<memory_gib> <letter>', got {line!r}")
        size, letter = fields
        if "," in letter or letter == BATCH_SEPARATOR:
            raise _error(file, lineno, f"invalid flavor name {letter!r}")
        if letter in flavors:
            raise _error(file, lineno, f"flavor {letter!r} defined twice")
        vcpus_text, _, memory_text = size.partition(",")
        vcpus = _parse_nat(file, lineno, vcpus_text, "vCPU count")
        try:
            memory_gib = float(memory_text)
        except ValueError:
            memory_gib = math.nan
        if not (math.isfinite(memory_gib) and memory_gib > 0) or vcpus == 0:
            raise _error(file, lineno, f"bad size {size!r}: expected '<vcpus>,<memory_gib>', both positive")
        flavors[letter] = Flavor(letter, vcpus, round(memory_gib * 1024))
    if not flavors:
        raise ConfigError(f"{file}: no flavors defined", path=str(file))
    return flavors


def read_lifetime_bins(path: str | os.PathLike[str]) -> LifetimeBins:
    """Parse a ``lifetime-bins.txt`` file: bins must be numbered 0, 1, 2, ... in increasing durations.

    Row ``d k`` puts the durations ``[d, d')`` in bin k, where ``d'`` is the next row's duration; the last
    row covers as long as the row before it did (so the last bin has a finite upper bound).
    """
    file = Path(path)
    rows: list[tuple[int, int]] = []
    for lineno, line in _read_lines(file):
        fields = line.split()
        if len(fields) != 2:
            raise _error(file, lineno, f"expected '<duration_seconds> <bin>', got {line!r}")
        duration = _parse_nat(file, lineno, fields[0], "duration")
        index = _parse_nat(file, lineno, fields[1], "bin")
        if rows:
            prev_duration, prev_index = rows[-1]
            if duration <= prev_duration:
                raise _error(
                    file, lineno, f"duration {duration} does not increase (previous {prev_duration})"
                )
            if index not in (prev_index, prev_index + 1):
                raise _error(file, lineno, f"bin {index} after bin {prev_index}: bins must go up one by one")
        elif index != 0:
            raise _error(file, lineno, f"the first row must be in bin 0, not {index}")
        rows.append((duration, index))
    if len(rows) < 2:
        raise ConfigError(f"{file}: needs at least two rows to bound its bins", path=str(file))
    lowers: list[int] = []
    for duration, index in rows:
        if index == len(lowers):
            lowers.append(duration)
    last_upper = 2 * rows[-1][0] - rows[-2][0]
    uppers = [*lowers[1:], last_upper]
    return LifetimeBins(
        tuple(LifetimeBin(k, lo, hi) for k, (lo, hi) in enumerate(zip(lowers, uppers, strict=True)))
    )


def iter_azure_vms(
    directory: str | os.PathLike[str],
    *,
    max_bins: int | None = None,
    max_vms: int | None = None,
    bin_s: int = DEFAULT_BIN_S,
) -> Iterator[VmArrival]:
    """Stream the VMs of the trace in ``directory`` in arrival order, parsing one time bin at a time.

    ``max_bins`` keeps only the first time bins, ``max_vms`` the first VMs. The flavor and lifetime-bin
    files and the line counts of arrivals.txt and lifetimes.txt are checked before this returns; a bad
    token in the trace raises :class:`~tropic.errors.ConfigError` when the stream reaches it.
    """
    return _generate(_open(directory, max_bins=max_bins, max_vms=max_vms, bin_s=bin_s), max_bins, max_vms)


def load_azure_trace(
    directory: str | os.PathLike[str],
    *,
    max_bins: int | None = None,
    max_vms: int | None = None,
    bin_s: int = DEFAULT_BIN_S,
) -> AzureTrace:
    """Load and check the whole trace in ``directory`` (optionally only its first bins or VMs)."""
    text = _open(directory, max_bins=max_bins, max_vms=max_vms, bin_s=bin_s)
    cursor = _Cursor()
    vms = tuple(_generate(text, max_bins, max_vms, cursor))
    return AzureTrace(
        directory=text.directory,
        flavors=text.flavors,
        lifetime_bins=text.bins,
        vms=vms,
        start_s=text.start_s,
        end_s=text.end_s,
        time_bins=cursor.time_bins,
        bin_s=bin_s,
    )


# --- parsing ----------------------------------------------------------------------------------------------
@dataclass
class _Cursor:
    """How far a stream got: the time bins it read VMs from (or that held none)."""

    time_bins: int = 0


@dataclass(frozen=True)
class _TraceText:
    """The files of a trace, read and checked line by line but not yet token by token."""

    directory: Path
    flavors: dict[str, Flavor]
    bins: LifetimeBins
    arrivals_path: Path
    lifetimes_path: Path
    arrivals: list[_Line]
    lifetimes: list[_Line]
    start_s: int
    end_s: int


def _open(
    directory: str | os.PathLike[str], *, max_bins: int | None, max_vms: int | None, bin_s: int
) -> _TraceText:
    for name, value in (("max_bins", max_bins), ("max_vms", max_vms)):
        if value is not None and value < 0:
            raise InvalidArguments(f"{name} must not be negative, got {value}")
    if bin_s <= 0:
        raise InvalidArguments(f"bin_s must be positive, got {bin_s}")
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"{root}: trace directory not found", path=str(root))
    flavors = read_flavors(root / FLAVORS_FILE)
    bins = read_lifetime_bins(root / LIFETIME_BINS_FILE)
    arrivals_path, lifetimes_path = root / ARRIVALS_FILE, root / LIFETIMES_FILE
    arrivals, lifetimes = _read_lines(arrivals_path), _read_lines(lifetimes_path)
    if not arrivals:
        raise ConfigError(f"{arrivals_path}: no time bins", path=str(arrivals_path))
    if len(lifetimes) < len(arrivals):
        lineno = lifetimes[-1][0] + 1 if lifetimes else 1
        a_lineno = arrivals[len(lifetimes)][0]
        raise _error(lifetimes_path, lineno, f"missing the line matching {arrivals_path.name}:{a_lineno}")
    if len(lifetimes) > len(arrivals):
        raise _error(
            lifetimes_path,
            lifetimes[len(arrivals)][0],
            f"extra line: {arrivals_path.name} has only {len(arrivals)} time bins",
        )
    start_s = _line_time(arrivals_path, *arrivals[0])
    return _TraceText(
        directory=root,
        flavors=flavors,
        bins=bins,
        arrivals_path=arrivals_path,
        lifetimes_path=lifetimes_path,
        arrivals=arrivals,
        lifetimes=lifetimes,
        start_s=start_s,
        end_s=_line_time(arrivals_path, *arrivals[-1]) + bin_s,
    )


def _generate(
    text: _TraceText, max_bins: int | None, max_vms: int | None, cursor: _Cursor | None = None
) -> Iterator[VmArrival]:
    cursor = _Cursor() if cursor is None else cursor
    flavors = text.flavors
    a_path, l_path = text.arrivals_path, text.lifetimes_path
    vm_id = 0
    batch = 0
    prev_time: int | None = None
    lines = zip(text.arrivals, text.lifetimes, strict=True)
    for (a_lineno, a_line), (l_lineno, l_line) in lines if max_bins is None else islice(lines, max_bins):
        if vm_id == max_vms:
            return
        time_s, a_tokens = _split(a_path, a_lineno, a_line)
        l_time, l_tokens = _split(l_path, l_lineno, l_line)
        if prev_time is not None and time_s <= prev_time:
            raise _error(a_path, a_lineno, f"time {time_s} does not increase (previous line: {prev_time})")
        prev_time = time_s
        line_first_vm = vm_id
        cursor.time_bins += 1
        if l_time != time_s:
            raise _error(l_path, l_lineno, f"time {l_time} differs from {a_path.name}:{a_lineno} ({time_s})")
        if len(l_tokens) != len(a_tokens):
            raise _error(
                l_path,
                l_lineno,
                f"{len(l_tokens)} tokens, but {a_path.name}:{a_lineno} has {len(a_tokens)}",
            )
        # Lifetimes depend on the arrival time only through the trace end, so cache them per line.
        lives: dict[str, _Life] = {}
        in_batch = False
        for position, (a_token, l_token) in enumerate(zip(a_tokens, l_tokens, strict=True), 1):
            if a_token == BATCH_SEPARATOR:
                if l_token != BATCH_SEPARATOR:
                    raise _error(
                        l_path,
                        l_lineno,
                        f"token {position} is {l_token!r}, but {a_path.name}:{a_lineno} closes a batch there",
                    )
                if in_batch:
                    batch += 1
                    in_batch = False
                continue
            if vm_id == max_vms:
                # Stop before checking tokens that were not asked for.
                if vm_id == line_first_vm:
                    cursor.time_bins -= 1
                return
            flavor = flavors.get(a_token)
            if flavor is None:
                raise _error(
                    a_path,
                    a_lineno,
                    f"token {position}: unknown flavor {a_token!r} (known: {', '.join(sorted(flavors))})",
                )
            life = lives.get(l_token)
            if life is None:
                life = lives[l_token] = _lifetime(text, l_lineno, position, l_token, time_s)
            yield VmArrival(
                vm_id,
                time_s,
                a_token,
                flavor.vcpus,
                flavor.memory_mib,
                batch,
                life[0],
                life[1],
                life[2],
                life[3],
            )
            vm_id += 1
            in_batch = True
        if in_batch:
            batch += 1


def _lifetime(text: _TraceText, lineno: int, position: int, token: str, time_s: int) -> _Life:
    """Interpret lifetime ``token`` of a VM arriving at ``time_s``.

    An uncensored VM's lifetime is the midpoint of its bin, clipped to the trace end: it is known to have
    ended before then, and the clipping keeps every uncensored departure inside the trace.
    """
    path = text.lifetimes_path
    if token == BATCH_SEPARATOR:
        raise _error(path, lineno, f"token {position} is '|', but {ARRIVALS_FILE} has a flavor there")
    kind, digits = token[:1], token[1:]
    if kind not in ("U", "C") or not (digits.isascii() and digits.isdigit()):
        raise _error(path, lineno, f"token {position}: expected 'U<bin>' or 'C<bin>', got {token!r}")
    index = int(digits)
    if index >= len(text.bins):
        raise _error(
            path,
            lineno,
            f"token {position}: unknown lifetime bin {index} "
            f"({LIFETIME_BINS_FILE} has bins 0-{len(text.bins) - 1})",
        )
    lower, upper = text.bins[index].lower_s, text.bins[index].upper_s
    remaining = text.end_s - time_s
    if kind == "C":
        if not lower <= remaining < upper:
            raise _error(
                path,
                lineno,
                f"token {position}: censored VM ran {remaining} s until the trace end, outside bin {index} "
                f"[{lower}, {upper}) s",
            )
        return index, float(remaining), True, float(text.end_s)
    if lower >= remaining:
        raise _error(
            path,
            lineno,
            f"token {position}: VM ended before the trace end ({remaining} s after it arrived) but its "
            f"lifetime bin {index} starts at {lower} s",
        )
    lifetime = (lower + min(upper, remaining)) / 2
    return index, lifetime, False, time_s + lifetime


def _split(path: Path, lineno: int, line: str) -> tuple[int, list[str]]:
    """Split a line of arrivals or lifetimes into its time and tokens (a trailing comma is allowed)."""
    fields = line.split(None, 1)
    time_s = _parse_nat(path, lineno, fields[0], "time")
    if len(fields) == 1:
        return time_s, []
    tokens = fields[1].split(",")
    if tokens[-1] == "":
        tokens.pop()
    if "" in tokens:
        raise _error(path, lineno, f"token {tokens.index('') + 1} is empty")
    return time_s, tokens


def _line_time(path: Path, lineno: int, line: str) -> int:
    return _parse_nat(path, lineno, line.split(None, 1)[0], "time")


def _parse_nat(path: Path, lineno: int, text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _error(path, lineno, f"bad {what} {text!r}: expected a non-negative integer")
    return int(text)


def _read_lines(path: Path) -> list[_Line]:
    """The non-blank lines of ``path``, stripped, with their 1-based numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: trace file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        lineno = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise _error(path, lineno, "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read trace file: {exc.strerror or exc}", path=str(path)) from None
    lines: list[_Line] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped:
            lines.append((lineno, stripped))
    return lines


def _error(path: Path, lineno: int, message: str) -> ConfigError:
    return ConfigError(f"{path}:{lineno}: {message}", path=str(path))
