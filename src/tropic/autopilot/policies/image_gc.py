"""Image garbage collection: old versions of the catalog's images (``/images/<name>/v<N>``) are collected
by the autopilot instead of waiting for an operator's ``tropic image gc``.

Retention: for each image, the newest ``keep`` versions (default 3) and every version published less than
``max_age_s`` ago (default 7 days) are kept; so is the latest, and so is every version **in use** (a
session has it open, or a volume, hence a VM, was cloned from it), whatever its age. Each image with a
version to collect gets one ``gc_image`` transaction (``keep``, ``published_before`` = the pass's time
minus ``max_age_s``), whose procedure applies the same rules again on the committed model, so a version
opened between the snapshot and the transaction is still kept. An image with nothing to collect costs no
transaction, so a quiet catalog's passes submit nothing.

``tropic serve --autopilot image-gc`` (defaults) or ``image-gc:KEEP/AGE`` (``image-gc:5/30d``: the newest
5, and any version younger than 30 days; ``image-gc:2/0``: the newest 2, whatever their age).

Units: ``gain`` is the data freed, in MiB (each collected version's size once; its replicas in other
regions go with it); ``cost`` is 0 (collecting moves nothing), so the hysteresis never holds it back.
"""

from __future__ import annotations

import re
import time

from tropic.autopilot.base import Collect, ImageState, Plan, PolicyError, Snapshot

DEFAULT_KEEP = 3
DEFAULT_MAX_AGE_S = 7 * 86400.0
AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def parse_retention(text: str) -> tuple[int, float]:
    """``KEEP`` or ``KEEP/AGE`` (``3/7d``, ``5``, ``2/0``) -> (keep, max_age_s); a clear PolicyError."""
    keep_text, _, age_text = text.strip().partition("/")
    expected = "expected KEEP/AGE, e.g. image-gc:3/7d (the newest 3, and versions younger than 7 days)"
    if not keep_text.strip().isdigit():
        raise PolicyError(f"image-gc retention {text!r}: KEEP must be a whole number; {expected}")
    keep = int(keep_text)
    age = DEFAULT_MAX_AGE_S
    if age_text.strip():
        m = _AGE.match(age_text.strip())
        if m is None:
            raise PolicyError(f"image-gc retention {text!r}: AGE {age_text!r} is malformed; {expected}")
        age = float(m.group(1)) * AGE_UNITS[m.group(2)]
    return keep, age


class ImageGC:
    """The image-gc policy (see the module docstring)."""

    name = "image-gc"

    def __init__(
        self, retention: str = "", *, keep: int = DEFAULT_KEEP, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        if retention:
            keep, max_age_s = parse_retention(retention)
        if keep < 1:
            raise PolicyError(f"image-gc keep {keep} must be >= 1 (the latest version is never collected)")
        if max_age_s < 0:
            raise PolicyError(f"image-gc max age {max_age_s:g} s must be >= 0")
        self.keep = keep
        self.max_age_s = max_age_s

    def plan(self, snapshot: Snapshot, *, budget: int, time_limit: float) -> Plan:
        started = time.perf_counter()
        cutoff = snapshot.at - self.max_age_s
        collect: list[Collect] = []
        held: list[str] = []
        freed = 0.0
        for path, img in sorted(snapshot.images.items()):
            gone, busy = self.collectable(img, cutoff)
            held += [f"{path}/v{v}: {why}" for v, why in busy]
            if gone:
                freed += sum(v.size_mib for v in img.versions if v.version in gone)
                why = f"{len(gone)} version(s) beyond the newest {self.keep} and older than the age limit"
                collect.append(Collect(path.rsplit("/", 1)[1], self.keep, cutoff, tuple(gone), why))
        kept = f" (kept, in use: {'; '.join(held)})" if held else ""
        if not collect:
            return Plan(
                self.name,
                why=f"no image version to collect{kept}",
                solve_s=time.perf_counter() - started,
            )
        names = ", ".join(f"{c.image} v{'/v'.join(map(str, c.versions))}" for c in collect)
        return Plan(
            self.name,
            collect=tuple(collect),
            gain=freed,
            cost=0.0,
            why=f"collect {names}: {freed:g} MiB freed{kept}",
            solve_s=time.perf_counter() - started,
        )

    def collectable(self, img: ImageState, cutoff: float) -> tuple[list[int], list[tuple[int, str]]]:
        """The versions of ``img`` to collect, and the ones retention would take that are in use (kept,
        with why): beyond the newest ``keep``, published before ``cutoff``, not the latest."""
        versions = sorted(img.versions, key=lambda v: v.version)
        gone: list[int] = []
        busy: list[tuple[int, str]] = []
        for v in versions[: max(0, len(versions) - self.keep)]:
            if v.version == img.latest or v.published_at >= cutoff:
                continue
            if v.in_use:
                busy.append((v.version, ", ".join(v.in_use)))
            else:
                gone.append(v.version)
        return gone, busy
