"""The trace files a replay reads, named one by one (as ``tropic replay`` takes them) or by directory.

The Azure reader (:mod:`tropic.trace.azure`) reads a directory of four files with fixed names. Files named
on their own are linked into a private directory under those names, and any error message is given back
with the paths the user wrote.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tropic.errors import ConfigError
from tropic.trace import (
    ARRIVALS_FILE,
    FLAVORS_FILE,
    LIFETIME_BINS_FILE,
    LIFETIMES_FILE,
    AzureTrace,
    load_azure_trace,
    sample_path,
)


@dataclass(frozen=True, slots=True)
class TraceFiles:
    arrivals: Path
    lifetimes: Path
    flavors: Path
    lifetime_bins: Path

    @staticmethod
    def in_directory(directory: str | os.PathLike[str]) -> TraceFiles:
        d = Path(directory)
        return TraceFiles(d / ARRIVALS_FILE, d / LIFETIMES_FILE, d / FLAVORS_FILE, d / LIFETIME_BINS_FILE)

    @staticmethod
    def sample() -> TraceFiles:
        """The small generated trace shipped with tropic."""
        return TraceFiles.in_directory(sample_path())

    @staticmethod
    def resolve(
        arrivals: str | os.PathLike[str],
        lifetimes: str | os.PathLike[str],
        flavors: str | os.PathLike[str] | None = None,
        lifetime_bins: str | os.PathLike[str] | None = None,
    ) -> TraceFiles:
        """The files given; flavors and lifetime bins default to their standard names beside arrivals
        and lifetimes respectively."""
        a, lt = Path(arrivals), Path(lifetimes)
        return TraceFiles(
            a,
            lt,
            Path(flavors) if flavors is not None else a.parent / FLAVORS_FILE,
            Path(lifetime_bins) if lifetime_bins is not None else lt.parent / LIFETIME_BINS_FILE,
        )

    def named(self) -> dict[str, Path]:
        return {
            ARRIVALS_FILE: self.arrivals,
            LIFETIMES_FILE: self.lifetimes,
            FLAVORS_FILE: self.flavors,
            LIFETIME_BINS_FILE: self.lifetime_bins,
        }

    def check_exist(self) -> None:
        for role, path in (
            ("arrivals", self.arrivals),
            ("lifetimes", self.lifetimes),
            ("flavors", self.flavors),
            ("lifetime bins", self.lifetime_bins),
        ):
            if not path.is_file():
                why = "is a directory, not a file" if path.is_dir() else "not found"
                raise ConfigError(f"{path}: {role} file {why}", path=str(path))

    def load(self, *, max_bins: int | None = None, max_vms: int | None = None) -> AzureTrace:
        """Read and check the trace (optionally only its first bins or VMs)."""
        self.check_exist()
        directory = self.arrivals.parent
        if all(p.parent == directory and p.name == name for name, p in self.named().items()):
            return load_azure_trace(directory, max_bins=max_bins, max_vms=max_vms)
        with tempfile.TemporaryDirectory(prefix="tropic-trace-") as tmp:
            for name, path in self.named().items():
                os.symlink(path.resolve(), Path(tmp) / name)
            try:
                trace = load_azure_trace(tmp, max_bins=max_bins, max_vms=max_vms)
            except ConfigError as e:
                message = e.message
                where = e.path
                for name, path in self.named().items():
                    linked = str(Path(tmp) / name)
                    message = message.replace(linked, str(path))
                    if where == linked:
                        where = str(path)
                raise ConfigError(message, path=where) from None
        return dataclasses.replace(trace, directory=directory)
